"""One registry helper for every table of named plug-ins (corpus readers, encoder families,
probes, tasks, objectives, adapter methods).

One duplicate rule everywhere: registering the *same* object under a name again is allowed (a
module imported twice, a notebook cell run twice); anything else under a taken name raises
:class:`RegistryError` naming both. Lookups of an unknown name raise the same error class with
the registered names listed.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from probekit.errors import ProbekitError

__all__ = ["Registry", "RegistryError"]

T = TypeVar("T")


class RegistryError(ProbekitError, ValueError):
    """A name is registered twice with different objects, or is not registered at all."""


def _describe(obj) -> str:
    mod, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{mod}.{name}" if mod and name else repr(obj)


class Registry(Generic[T]):
    """A named table of plug-ins. ``what`` names the kind in messages ("probe", "reader").

    >>> r = Registry("probe")
    >>> _ = r.add("lda", dict)
    >>> r["lda"] is dict
    True
    """

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; the same object again is a no-op."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.what} needs a non-empty string name, got {name!r}")
        held = self._items.get(name)
        if held is not None and held is not obj:
            raise RegistryError(f"{self.what} name {name!r} is taken by {_describe(held)}; "
                                f"cannot also register {_describe(obj)} under it")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        """The object registered under ``name``; an unknown name raises :class:`RegistryError`."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise RegistryError(f"unknown {self.what} {name!r}; registered: "
                                f"{', '.join(self.names()) or '(none)'}") from None

    __getitem__ = get

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"
