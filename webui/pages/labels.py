"""Label placement for the maps: a greedy placer over candidate positions, so that no two
labels overlap and few cover a mark.

Each label is offered a list of candidates (where its text would go, and how far from
what it names); the placer takes the cheapest one whose box stays inside the drawing and
clear of every label placed before (the caller places the most important first). Marks
(sites, points, small zones) are soft obstacles: covering one costs, it does not forbid.
A label with no free candidate is left out (the caller says where else the name is shown).

Text widths are estimated from a table of character widths (em) of the common sans-serif
faces, on the generous side, since the server cannot measure the browser's font.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in the drawing's units

HALO = 1.5  # the white outline drawn around label text (CSS: stroke-width 3px)
ASCENT, DESCENT = 0.80, 0.25  # of the font size, above and below the baseline
_NARROW = set("iljI.,:;'!|")
_SPACE = set(" -()/°")
_WIDE = set("MWmw@%")


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float) -> float:
    """A generous estimate of the width of ``text`` set at ``size``."""
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.32
        elif ch in _SPACE:
            em += 0.40
        elif ch in _WIDE:
            em += 0.95
        elif ch.isupper() or ch.isdigit():
            em += 0.72
        else:
            em += 0.60
    return em * size


def text_box(text: str, x: float, y: float, anchor: str, size: float) -> Box:
    """The box of ``text`` drawn at (x, y) with SVG ``text-anchor`` ``anchor``."""
    width = text_width(text, size)
    left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return (left - HALO, y - ASCENT * size - HALO, left + width + HALO, y + DESCENT * size + HALO)


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass(frozen=True)
class Candidate:
    x: float
    y: float
    anchor: str
    cost: float = 0.0  # how far it is from the preferred place
    leader_to: Box | None = None  # what a leader line joins, when set away from it


@dataclass(frozen=True)
class Placed:
    text: str
    x: float
    y: float
    anchor: str
    box: Box
    leader: tuple[float, float, float, float] | None  # x1 y1 x2 y2


MARK_COST = 1.5  # covering one mark costs as much as one and a half steps away


class Boxes:
    """Boxes filed by the squares of a grid they touch, so that what a box meets is looked
    for among its neighbours only (a map may hold hundreds of marks)."""

    SQUARE = 32.0

    def __init__(self) -> None:
        self._grid: dict[tuple[int, int], list[Box]] = defaultdict(list)

    def _squares(self, box: Box) -> Iterator[tuple[int, int]]:
        s = self.SQUARE
        for i in range(int(box[0] // s), int(box[2] // s) + 1):
            for j in range(int(box[1] // s), int(box[3] // s) + 1):
                yield i, j

    def add(self, box: Box) -> None:
        for square in self._squares(box):
            self._grid[square].append(box)

    def meets(self, box: Box) -> bool:
        return any(overlap(box, b) for square in self._squares(box)
                   for b in self._grid.get(square, ()))

    def meeting(self, box: Box) -> set[Box]:
        return {b for square in self._squares(box) for b in self._grid.get(square, ())
                if overlap(box, b)}


class Placer:
    """Boxes taken so far in a drawing of ``width`` x ``height``."""

    def __init__(self, width: float, height: float) -> None:
        self.width, self.height = width, height
        self.taken = Boxes()
        self.marks = Boxes()

    def block(self, box: Box) -> None:
        """Nothing may be placed over ``box`` (another label, the scale bar, a tick)."""
        self.taken.add(box)

    def mark(self, box: Box) -> None:
        """Placing over ``box`` costs (a site, a point, a small zone)."""
        self.marks.add(box)

    def free(self, box: Box) -> bool:
        inside = (box[0] >= 0 and box[1] >= 0 and box[2] <= self.width
                  and box[3] <= self.height)
        return inside and not self.taken.meets(box)

    def place(self, text: str, size: float, candidates: Iterable[Candidate],
              fits: Callable[[Box], bool] | None = None) -> Placed | None:
        """The cheapest free candidate, taken; None when none is free. ``fits``: what else
        a candidate's box must satisfy (a country's name lies within its land)."""
        best: tuple[float, Candidate, Box] | None = None
        for c in sorted(candidates, key=lambda c: c.cost):
            if best is not None and c.cost >= best[0]:
                break  # covering marks only adds to a cost: no later candidate is cheaper
            box = text_box(text, c.x, c.y, c.anchor, size)
            if not self.free(box) or (fits is not None and not fits(box)):
                continue
            cost = c.cost + MARK_COST * len(self.marks.meeting(box))
            if best is None or cost < best[0]:
                best = (cost, c, box)
        if best is None:
            return None
        _, chosen, box = best
        self.block(box)
        leader = _leader(box, chosen.leader_to) if chosen.leader_to else None
        return Placed(text, chosen.x, chosen.y, chosen.anchor, box, leader)


def _leader(label: Box, target: Box) -> tuple[float, float, float, float] | None:
    """A line from the label's box to the nearest point of what it names, when apart."""
    tx = min(max((label[0] + label[2]) / 2, target[0]), target[2])
    ty = min(max((label[1] + label[3]) / 2, target[1]), target[3])
    lx = min(max(tx, label[0]), label[2])
    ly = min(max(ty, label[1]), label[3])
    if abs(lx - tx) + abs(ly - ty) < 6:
        return None
    return (round(lx, 1), round(ly, 1), round(tx, 1), round(ty, 1))


STEPS = (0.0, 14.0, 30.0, 50.0, 75.0, 105.0)  # distances tried beside a shape


def around(box: Box, size: float, steps: Sequence[float] = STEPS) -> list[Candidate]:
    """Candidates beside ``box`` (a shape's extent): right, left, above, below and the
    corners, first just beside it, then farther out with a leader line."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    middle = cy + (ASCENT - DESCENT) * size / 2  # baseline that centres the text on cy
    found = []
    for k, d in enumerate(steps):
        gap = 5 + d
        leader = box if d else None
        found += [
            Candidate(x1 + gap, middle, "start", k, leader),
            Candidate(x0 - gap, middle, "end", k + 0.1, leader),
            Candidate(cx, y0 - gap - DESCENT * size, "middle", k + 0.2, leader),
            Candidate(cx, y1 + gap + ASCENT * size, "middle", k + 0.2, leader),
            Candidate(x1 + gap, y0 - gap, "start", k + 0.3, leader),
            Candidate(x0 - gap, y0 - gap, "end", k + 0.3, leader),
            Candidate(x1 + gap, y1 + gap + ASCENT * size, "start", k + 0.3, leader),
            Candidate(x0 - gap, y1 + gap + ASCENT * size, "end", k + 0.3, leader),
        ]
    return found


def inside(x: float, y: float, size: float, step: float = 0.0) -> list[Candidate]:
    """Candidates centred on (x, y), a point inside a large shape, and above and below it."""
    middle = y + (ASCENT - DESCENT) * size / 2
    found = [Candidate(x, middle, "middle")]
    for k in range(1, 4):
        for sign in (-1, 1):
            found.append(Candidate(x, middle + sign * k * (step or 1.6 * size), "middle",
                                   0.3 * k))
    return found
