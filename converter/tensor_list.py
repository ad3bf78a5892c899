"""TensorFlow's TensorLists during conversion: what a list handle stands for in the network.

A ``DT_VARIANT`` list handle has no TensorRT counterpart; the converters of ``TensorList*`` ops and of ``While``
track what it holds instead (what Keras recurrent layers and ``tf.TensorArray`` compile to):

- a **stacked** list (``items``): its elements are the slices of one tensor along axis 0 —
  ``TensorListFromTensor``, or the elements a loop wrote, after the loop (a ``CONCATENATE`` loop output);
- a **reserved** list (``length``): ``TensorListReserve``, elements not written yet;
- a **written** list, inside a loop body only: the element ``TensorListSetItem`` writes in this iteration,
  at the loop counter (``at_counter``: element ``i`` in iteration ``i``) or at a constant index.

Reading an element of a stacked list inside a loop at the loop counter becomes an ``ITERATOR``; at any
other index, a gather.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TensorList"]


@dataclass
class TensorList:
    """What one list handle holds (see the module docstring)."""

    element_dtype: str = "float32"
    #: stacked elements: a :class:`~converter.context.Value` whose axis 0 indexes the elements
    items: object = None
    #: number of elements of a reserved list (a constant int, or None when it is not known statically)
    length: int | None = None
    #: the element written in the current iteration (a Value), inside a loop body
    written: object = None
    #: where it was written: True at the loop counter, else the constant index
    at_counter: bool = False
    index: int | None = None
    #: the loop the write belongs to
    loop: str | None = None

    # a handle is not a tensor: the constructor neither compares its shape nor maps it for verification
    is_const = False
    tensor = None

    @property
    def stacked(self) -> bool:
        return self.items is not None
