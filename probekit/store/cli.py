"""``probekit extract``: encode a corpus and write the embedding store; ``probekit store
verify``: check every shard file against the sizes and checksums recorded when it was written."""

from __future__ import annotations

import argparse


def _split(value: str | None) -> list[str] | None:
    from probekit.cliutil import comma_list

    return None if value is None else comma_list(value)


def _positive_seconds(value: str) -> float:
    """``--max-batch-seconds`` (``argparse`` type): a number of seconds > 0."""
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{value} must be a number of seconds > 0")
    return v


def _extract(args: argparse.Namespace) -> int:
    from pathlib import Path

    from probekit.corpus.readers import read_corpus
    from probekit.encoders import load_encoder
    from probekit import distributed
    from probekit.store import extract, extract_shards
    from probekit.store.store import INDEX_NAME

    # torchrun / accelerate launch: a gloo group gives barriers; each rank takes its shards.
    distributed.init_from_env()
    rank, world = distributed.rank_and_world()
    corpus = read_corpus(args.corpus)
    encoder = load_encoder(args.encoder, device=distributed.local_device(args.device))
    kw = dict(layers=_split(args.layers), poolings=_split(args.pooling), dtype=args.dtype,
              shard_size=args.shard_size, batch_size=args.batch_size,
              max_batch_seconds=args.max_batch_seconds, overwrite=args.overwrite,
              progress=not (args.no_progress or args.quiet))
    if world > 1 and not distributed.is_initialized():  # RANK/WORLD_SIZE, no rendezvous
        written = extract_shards(encoder, corpus, args.out, **kw)
        left = ("the store is finished" if (Path(args.out) / INDEX_NAME).exists() else
                "the index is written when every rank has finished (or rerun with one process "
                "to write it)")
        print(f"rank {rank}/{world}: wrote {len(written)} shard(s) to {args.out}; {left}")
        return 0
    store = extract(encoder, corpus, args.out, **kw)
    if rank == 0:
        rows = ", ".join(f"{k} {v}" for k, v in store.index["rows"].items())
        print(f"store: {store.root} ({store.size_bytes() / 1e6:.1f} MB; {len(store.layers)} "
              f"layers; rows: {rows}; dtype {store.index['dtype']})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from probekit.errors import StoreError
    from probekit.store.integrity import damaged_shards, read_index
    from probekit.store.store import FINGERPRINT_NAME, INDEX_NAME

    root = Path(args.store)
    if not (root / INDEX_NAME).is_file():
        hint = (" (extraction has not finished: rerun it to resume)"
                if (root / FINGERPRINT_NAME).exists() else "")
        raise StoreError(f"{root} is not a finished embedding store: no {INDEX_NAME}{hint}")
    index = read_index(root / INDEX_NAME)
    names = [s["name"] for s in index["shards"]]
    damaged = damaged_shards(root, names, index)
    if damaged:
        raise StoreError(
            f"{root}: {len(damaged)} of {len(names)} shard(s) damaged: "
            + "; ".join(f"{n}: {p}" for n, p in damaged.items())
            + ". Run `probekit extract` with the same options and --out "
            f"{root} to extract only these again")
    legacy = [s["name"] for s in index["shards"] if "files" not in s]
    n_files = sum(len(s.get("files", {})) for s in index["shards"])
    note = (f"; {len(legacy)} shard(s) written before checksums existed were checked by their "
            "records only" if legacy else "")
    print(f"{root}: {len(names)} shard(s), {n_files} file(s): sizes and checksums match what "
          f"extraction wrote{note}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract", help="encode a corpus and store every layer's pooled hidden states",
        epilog="examples:\n  probekit extract --encoder whisper-tiny.en --corpus corpus/ "
               "--out store/\n  torchrun --nproc_per_node 2 -m probekit extract ...",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", required=True, help="known name, hub id or local folder")
    p.add_argument("--corpus", required=True, help="manifest file or corpus folder")
    p.add_argument("--out", required=True, help="store folder")
    p.add_argument("--layers", help="comma-separated indices or names, e.g. 0,2,4 or conv,block2"
                   " (default: all)")
    p.add_argument("--pooling", default="utterance,phone",
                   help="comma-separated: utterance, phone, frames (default: utterance,phone)")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                   help="storage type of the embeddings")
    from probekit.cliutil import add_device_argument
    add_device_argument(p, note="; under torchrun each rank takes its LOCAL_RANK GPU")
    from probekit.cliutil import at_least_one
    p.add_argument("--shard-size", type=at_least_one, default=64, help="utterances per shard")
    p.add_argument("--batch-size", type=at_least_one, default=None,
                   help="utterances per encoder call (default: the encoder family's choice "
                        "for the device; see docs/encoders.md)")
    p.add_argument("--max-batch-seconds", type=_positive_seconds, default=None,
                   help="cap on a batch's padded audio in seconds (> 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a mismatching store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as -q)")
    p.set_defaults(func=_extract)

    st = sub.add_parser("store", help="check an embedding store",
                        description="Embedding-store maintenance. `verify` compares every shard "
                                    "file with the size and SHA-256 recorded when extraction "
                                    "wrote it; `probekit extract` with the same options on the "
                                    "same folder extracts only the damaged shards again.")
    ssub = st.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    v = ssub.add_parser("verify", help="check every shard file's size and checksum",
                        description="Check every shard file of STORE against the size and SHA-256 "
                                    "recorded at commit time. Exit status 2 names each damaged "
                                    "shard and what is wrong with it.",
                        epilog="example: probekit store verify store/")
    v.add_argument("store", metavar="STORE", help="embedding store folder (probekit extract)")
    v.set_defaults(func=_verify)
