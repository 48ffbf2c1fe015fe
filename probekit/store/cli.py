"""``probekit extract``: encode a corpus and write the embedding store."""

from __future__ import annotations

import argparse


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _extract(args: argparse.Namespace) -> int:
    from probekit.corpus.readers import read_corpus
    from probekit.encoders import load_encoder
    from probekit.store import distributed, extract

    # torchrun / accelerate launch: a gloo group gives barriers; each rank takes its shards.
    distributed.init_from_env()
    rank, world = distributed.rank_and_world()
    corpus = read_corpus(args.corpus)
    encoder = load_encoder(args.encoder, device=distributed.local_device(args.device))
    store = extract(encoder, corpus, args.out, layers=_split(args.layers),
                    poolings=_split(args.pooling), dtype=args.dtype, shard_size=args.shard_size,
                    batch_size=args.batch_size, max_batch_seconds=args.max_batch_seconds,
                    overwrite=args.overwrite, progress=not (args.no_progress or args.quiet))
    if store is None:
        print(f"rank {rank}/{world}: shards written to {args.out}; the index is written when "
              "every rank has finished (rerun with one process to write it)")
    elif rank == 0:
        rows = ", ".join(f"{k} {v}" for k, v in store.index["rows"].items())
        print(f"store: {store.root} ({store.size_bytes() / 1e6:.1f} MB; {len(store.layers)} "
              f"layers; rows: {rows}; dtype {store.index['dtype']})")
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
    p.add_argument("--shard-size", type=int, default=64, help="utterances per shard")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per encoder call")
    p.add_argument("--max-batch-seconds", type=float, default=None,
                   help="cap on a batch's padded audio in seconds")
    p.add_argument("--overwrite", action="store_true", help="replace a mismatching store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as -q)")
    p.set_defaults(func=_extract)
