"""Search spaces: the knobs a template defines, and one point (a config) of their product.

A template asks ``autotune.get_config()`` for its config and defines knobs on it:

* ``define_split(name, axis, num_outputs=2, policy="factors", max_factor=None)``: ways to
  split a loop into ``num_outputs`` nested loops; an entity's ``size`` is
  ``[-1, f1, ..., fk]`` (outermost first; -1 = whatever remains);
* ``define_reorder(name, axes, policy="all"|"candidate", candidate=None)``: permutations;
* ``define_knob(name, values, default=None)``: one value out of a list;
* ``define_annotate(name, axes, policy="try_unroll"|"try_vec"|"try_unroll_vec")``: unroll
  every axis or none, vectorize the innermost axis or not.

The same template code runs in three modes, so it stays plain Python: collecting (a
``ConfigSpace``: ``define_*`` add knobs and ``cfg[name]`` gives the knob's default entity, so
the collecting run is also the fallback config's schedule) and applying (a
``ConfigEntity``: ``define_*`` do nothing and ``cfg[name]`` is the chosen entity).

A config is identified by its index in the product of the knobs (mixed radix, first knob
fastest) and, in logs, by its knob values (``ConfigEntity.to_json``), which stay readable
and survive changes of knob order.
"""

from __future__ import annotations

import itertools
import math
import operator

from ..errors import TensorlangError


class SpaceError(TensorlangError):
    """A knob defined wrongly, or a config that does not belong to a space."""


def _extent(axis) -> int:
    if isinstance(axis, int):
        return axis
    dom = getattr(axis, "dom", None)
    ext = getattr(dom, "extent", None) if dom is not None else None
    value = getattr(ext, "value", ext)
    if not isinstance(value, int):
        raise SpaceError(f"define_split: the extent of axis {axis!r} must be a constant int")
    return value


def _factors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# --------------------------------------------------------------------------- entities

class SplitEntity:
    """A split: ``size = [-1, f1, ..., fk]``; ``apply`` returns the loops, outermost first."""

    def __init__(self, size):
        self.size = list(size)

    def apply(self, sch, op, axis):
        stage = sch[op]
        loops = []
        for i in range(1, len(self.size)):
            outer, axis = stage.split(axis, factor=math.prod(self.size[i:]))
            loops.append(outer)
        return loops + [axis]

    @property
    def val(self):
        return self.size

    def __repr__(self):
        return f"split{self.size}"


class ReorderEntity:
    """A permutation ``perm`` of the axes; ``apply`` reorders them and returns them."""

    def __init__(self, perm):
        self.perm = list(perm)

    def apply(self, sch, op, axes):
        ordered = [axes[i] for i in self.perm]
        sch[op].reorder(*ordered)
        return ordered

    @property
    def val(self):
        return self.perm

    def __repr__(self):
        return f"reorder{self.perm}"


class AnnotateEntity:
    """One annotation per axis: ``"none"``, ``"unroll"`` or ``"vec"``."""

    def __init__(self, anns):
        self.anns = list(anns)

    def apply(self, sch, op, axes):
        for ax, ann in zip(axes, self.anns):
            if ann == "unroll":
                sch[op].unroll(ax)
            elif ann == "vec":
                sch[op].vectorize(ax)
        return list(axes)

    @property
    def val(self):
        return self.anns

    def __repr__(self):
        return f"annotate{self.anns}"


class KnobEntity:
    """One value of a ``define_knob`` list."""

    def __init__(self, val):
        self.val = val

    def __repr__(self):
        return repr(self.val)


# --------------------------------------------------------------------------- knob spaces

class Knob:
    """The entities one knob can take (``entities``), and how to encode one as JSON."""

    kind = ""

    def __init__(self, name: str, entities: list):
        if not entities:
            raise SpaceError(f"knob {name!r} has no candidates")
        self.name, self.entities = name, entities

    def __len__(self):
        return len(self.entities)

    def encode(self, e):
        return e.val

    def index_of(self, value) -> int:
        for i, e in enumerate(self.entities):
            if self.encode(e) == value:
                return i
        raise SpaceError(f"knob {self.name!r} has no value {value!r}")

    def default(self) -> int:
        return 0

    def __repr__(self):
        return f"{self.kind}({self.name}, {len(self)} choices)"


class SplitKnob(Knob):
    kind = "split"

    def __init__(self, name, axis, num_outputs=2, policy="factors", max_factor=None):
        n = _extent(axis)
        if not isinstance(num_outputs, int) or not 2 <= num_outputs <= 4:
            raise SpaceError(f"define_split({name!r}): num_outputs must be 2..4, got {num_outputs!r}")
        if policy == "factors":
            cands = _factors(n)
        elif policy == "power2":
            cands = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
        elif policy == "verbose":
            cands = sorted(set(_factors(n)) | {1 << i for i in range(n.bit_length()) if 1 << i <= n})
        else:
            raise SpaceError(f"define_split({name!r}): policy must be 'factors', 'power2' or "
                             f"'verbose', got {policy!r}")
        if max_factor is not None:
            cands = [c for c in cands if c <= max_factor]
        sizes = []
        for inner in itertools.product(cands, repeat=num_outputs - 1):
            prod = math.prod(inner)
            if prod <= n and (policy == "power2" or policy == "verbose" or n % prod == 0):
                sizes.append([-1, *inner])
        self.extent = n
        super().__init__(name, [SplitEntity(s) for s in sizes])

    def default(self) -> int:
        """The innermost loop as close to 16 (a float32 vector) as the candidates allow,
        the others 1."""
        best = min(range(len(self)), key=lambda i: (
            any(f != 1 for f in self.entities[i].size[1:-1]),
            abs(math.log2(self.entities[i].size[-1]) - 4)))
        return best


class ReorderKnob(Knob):
    kind = "reorder"

    def __init__(self, name, axes, policy="all", candidate=None):
        n = len(axes)
        if policy == "all":
            perms = list(itertools.permutations(range(n)))
        elif policy == "candidate":
            if not candidate:
                raise SpaceError(f"define_reorder({name!r}): policy 'candidate' needs candidate=[...]")
            ids = [id(a) for a in axes]
            perms = []
            for order in candidate:
                try:
                    perms.append(tuple(ids.index(id(a)) for a in order))
                except ValueError:
                    raise SpaceError(f"define_reorder({name!r}): a candidate names an axis "
                                     f"that is not in axes") from None
        else:
            raise SpaceError(f"define_reorder({name!r}): policy must be 'all' or 'candidate', "
                             f"got {policy!r}")
        super().__init__(name, [ReorderEntity(p) for p in perms])


class AnnotateKnob(Knob):
    kind = "annotate"

    def __init__(self, name, axes, policy="try_unroll"):
        n = len(axes)
        unroll = [["none"] * n, ["unroll"] * n] if "unroll" in policy else [["none"] * n]
        if policy not in ("try_unroll", "try_vec", "try_unroll_vec"):
            raise SpaceError(f"define_annotate({name!r}): policy must be 'try_unroll', 'try_vec' "
                             f"or 'try_unroll_vec', got {policy!r}")
        anns = []
        for u in unroll:
            anns.append(list(u))
            if "vec" in policy:
                anns.append(u[:-1] + ["vec"])
        super().__init__(name, [AnnotateEntity(a) for a in anns])


class OtherKnob(Knob):
    kind = "knob"

    def __init__(self, name, values, default=None):
        values = list(values)
        super().__init__(name, [KnobEntity(v) for v in values])
        if default is not None and default not in values:
            raise SpaceError(f"define_knob({name!r}): default {default!r} is not one of {values}")
        self._default = 0 if default is None else values.index(default)

    def default(self) -> int:
        return self._default


# --------------------------------------------------------------------------- configs

class _Defines:
    """The ``define_*`` methods; subclasses decide what defining a knob does."""

    def define_split(self, name, axis, num_outputs=2, policy="factors", max_factor=None):
        return self._add(name, lambda: SplitKnob(name, axis, num_outputs, policy, max_factor))

    def define_reorder(self, name, axes, policy="all", candidate=None):
        return self._add(name, lambda: ReorderKnob(name, axes, policy, candidate))

    def define_knob(self, name, values, default=None):
        """One value out of ``values``; ``default`` is the fallback config's (else the first)."""
        return self._add(name, lambda: OtherKnob(name, values, default))

    def define_annotate(self, name, axes, policy="try_unroll"):
        return self._add(name, lambda: AnnotateKnob(name, axes, policy))

    def _add(self, name, make):
        raise NotImplementedError


class ConfigSpace(_Defines):
    """The knobs of a template (collected by running it once) and their product."""

    def __init__(self):
        self.knobs: dict[str, Knob] = {}

    def _add(self, name, make):
        if not isinstance(name, str) or not name:
            raise SpaceError(f"a knob's name must be a non-empty string, got {name!r}")
        if name in self.knobs:
            raise SpaceError(f"knob {name!r} is defined twice")
        self.knobs[name] = make()

    def __getitem__(self, name):                 # while collecting: a valid entity
        return self.knobs[name].entities[self.knobs[name].default()]

    def __len__(self):
        return math.prod(len(k) for k in self.knobs.values())

    def get(self, index: int) -> "ConfigEntity":
        try:
            i = None if isinstance(index, bool) else operator.index(index)
        except TypeError:
            i = None
        if i is None or not 0 <= i < len(self):
            raise SpaceError(f"config index {index!r} is outside the space of {len(self)}")
        index = i
        return ConfigEntity(self, index, dict(zip(self.knobs, self.choices(index))))

    @property
    def radix(self) -> list[int]:
        """The number of entities of each knob, in definition order."""
        return [len(k) for k in self.knobs.values()]

    def choices(self, index: int) -> list[int]:
        """The entity index of each knob for config ``index`` (mixed radix, first knob
        fastest): the "genes" the genetic and model-based tuners work on."""
        out = []
        for r in self.radix:
            index, c = divmod(index, r)
            out.append(c)
        return out

    def index_of(self, choice) -> int:
        """The config index of per-knob entity indices (a list, or a dict by knob name)."""
        if isinstance(choice, dict):
            choice = [choice[name] for name in self.knobs]
        index, mult = 0, 1
        for c, r in zip(choice, self.radix):
            index += c * mult
            mult *= r
        return index

    def from_json(self, knobs: dict) -> "ConfigEntity":
        """The config with these knob values (as ``ConfigEntity.to_json`` wrote them). A knob
        the template gained after the record was written takes its default (which keeps the
        schedule the record measured); a knob the space does not have is an error."""
        if not isinstance(knobs, dict) or not set(knobs) <= set(self.knobs):
            got = sorted(knobs) if isinstance(knobs, dict) else knobs
            raise SpaceError(f"config knobs {got} do not match the space's {sorted(self.knobs)}")
        choice = {name: knob.index_of(knobs[name]) if name in knobs else knob.default()
                  for name, knob in self.knobs.items()}
        return self.get(self.index_of(choice))

    def fallback(self) -> "ConfigEntity":
        return self.get(self.index_of({n: k.default() for n, k in self.knobs.items()}))

    def __str__(self):
        lines = [f"ConfigSpace: {len(self)} configs"]
        for i, (name, knob) in enumerate(self.knobs.items()):
            shown = ", ".join(repr(e) for e in knob.entities[:4])
            more = f", ... ({len(knob)} in all)" if len(knob) > 4 else ""
            lines.append(f"  {i:2d} {name} ({knob.kind}): {shown}{more}")
        return "\n".join(lines)


class ConfigEntity(_Defines):
    """One point of a space: ``cfg[name]`` is the chosen entity of knob ``name``."""

    def __init__(self, space: ConfigSpace, index: int, choice: dict):
        self.space, self.index, self._choice = space, index, choice

    def _add(self, name, make):                 # the space is already known
        if name not in self.space.knobs:
            raise SpaceError(f"knob {name!r} is not in this config's space")

    def __getitem__(self, name):
        return self.space.knobs[name].entities[self._choice[name]]

    def to_json(self) -> dict:
        return {n: k.encode(k.entities[self._choice[n]]) for n, k in self.space.knobs.items()}

    def __eq__(self, other):
        return isinstance(other, ConfigEntity) and self.index == other.index

    def __hash__(self):
        return hash(self.index)

    def __repr__(self):
        return f"[{self.index}] " + ", ".join(f"{n}={v}" for n, v in self.to_json().items())
