"""The ``ILoop`` (and ``IIfConditional``) objects of one network under construction, by name.

TensorRT has no loop *layer*: a loop is an ``ILoop`` object (``network.add_loop()``) and its
boundary layers (trip limits, recurrences, iterators, loop outputs) are created through it.  The
boundary kinds (:mod:`.trip_limit`, :mod:`.recurrence`, :mod:`.iterator`, :mod:`.loop_output`)
therefore name their loop in their parameters (``Params.loop``) and obtain the ``ILoop`` here,
creating it (named after ``Params.loop``) when the first boundary layer of that loop is added.

The table lives in the ``keep`` list every ``add`` receives: one list per built network, both in
:meth:`ConversionContext.add` and in :meth:`Snapshot.to_network`, so a loop name means the same
``ILoop`` for the whole of one network and nothing leaks between networks.  Loop names must be
unique within a network (snapshots identify a loop by its name).

Conditionals are the same story: an ``IIfConditional`` (``network.add_if_conditional()``) owns the
CONDITION, CONDITIONAL_INPUT and CONDITIONAL_OUTPUT layers, which name it in ``Params.conditional``;
:func:`conditional_named` finds or creates it in a second table.
"""

from __future__ import annotations

from converter.errors import SnapshotError

__all__ = ["LoopTable", "ConditionalTable", "loop_named", "conditional_named"]


class LoopTable:
    """``ILoop`` by name for one network (kept in that network's ``keep`` list)."""

    what = "loop"

    def __init__(self, network):
        self.network = network
        self.loops: dict[str, object] = {}

    def _create(self):
        return self.network.add_loop()

    def get(self, name: str):
        """The loop called ``name``, created (and named) on first use."""
        loop = self.loops.get(name)
        if loop is None:
            loop = self._create()
            if loop is None:
                raise SnapshotError(f"TensorRT refused to create {self.what} {name!r}")
            loop.name = name
            self.loops[name] = loop
        return loop


class ConditionalTable(LoopTable):
    """``IIfConditional`` by name for one network."""

    what = "conditional"

    def _create(self):
        return self.network.add_if_conditional()


def _named(table_class, network, keep: list | None, name: str):
    what = table_class.what
    if keep is None:
        raise SnapshotError(f"{what} {name!r}: its boundary layers need the network's keep list to find it",
                            hint="create them through ConversionContext.add or Snapshot.to_network")
    if not name:
        raise SnapshotError(f"a {what} boundary layer needs a {what} name (Params.{what})")
    for item in keep:
        if type(item) is table_class and item.network is network:
            return item.get(name)
    table = table_class(network)
    keep.append(table)
    return table.get(name)


def loop_named(network, keep: list | None, name: str):
    """The network's ``ILoop`` called ``name`` (see the module docstring)."""
    return _named(LoopTable, network, keep, name)


def conditional_named(network, keep: list | None, name: str):
    """The network's ``IIfConditional`` called ``name``."""
    return _named(ConditionalTable, network, keep, name)
