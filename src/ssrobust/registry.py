"""Name -> constructor registries, one per component family (models, tasks, attacks, ...).

Selecting a component by name goes through ``Registry.build`` (or ``Registry.get`` for the
constructor itself) so an unknown name always raises a :class:`~ssrobust.errors.ComponentError`
that lists the known ones, instead of an if/elif chain on strings; wrong options raise the same
error type, naming the component.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ComponentError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of constructors (classes or factory functions)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("wrn")`` adds the decorated object under ``name``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """The registered constructor; an unknown name raises a ComponentError listing the known ones."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ComponentError(f"unknown {self.family} {name!r}; known: {known}") from None

    def build(self, name: str, *args: Any, **options: Any) -> Any:
        """``get(name)(*args, **options)``; options the constructor does not take raise a
        ComponentError naming the component (``attack 'pgd': ... unexpected keyword 'epz'``)."""
        constructor: Any = self.get(name)
        try:
            return constructor(*args, **options)
        except TypeError as e:
            raise ComponentError(f"{self.family} {name!r}: {e}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
