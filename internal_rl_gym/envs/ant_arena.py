"""The MuJoCo scene of AntPinpad: Gymnasium's ``ant.xml`` plus 16 flat, visual-only floor tiles
(one per grid cell) and one visual-only wall block, the cells' world coordinates, and the check
that rendering it can open an OpenGL context.

The scene is compiled once per env instance; a reset only recolours the tiles
(``model.geom_rgba``) and moves the wall block (``model.geom_pos``) with :func:`paint_layout`, so
layouts change at no compile cost.
"""

from __future__ import annotations

# isort: off
import internal_rl_gym.envs._require_mujoco  # noqa: F401  (a clear error without MuJoCo)
# isort: on

import os
import sys
import xml.etree.ElementTree as ET

import gymnasium.envs.mujoco
import mujoco
import numpy as np

from internal_rl_gym.tasks import COLOUR_RGB

__all__ = [
    "GYMNASIUM_ANT_XML",
    "build_model_xml",
    "cell_centre",
    "check_gl_backend",
    "paint_layout",
]

#: Gymnasium's ant model, the "classic MuJoCo ant" of the paper.
GYMNASIUM_ANT_XML = os.path.join(
    os.path.dirname(gymnasium.envs.mujoco.__file__), "assets", "ant.xml"
)

_NEUTRAL_RGBA = ((0.62, 0.62, 0.62, 1.0), (0.52, 0.52, 0.52, 1.0))  # checkerboard of free cells
_WALL_RGBA = (0.15, 0.15, 0.18, 1.0)
_HIDDEN_Z = -5.0  # wall block parked under the floor when a layout has no wall


def build_model_xml(ant_xml: str, size: int, cell_size: float) -> str:
    """The pinpad model: ``ant_xml`` plus a tile per cell and a wall block (all visual-only).

    Cells are numbered ``row * size + col`` as in :mod:`grid_core`; column ``c`` spans
    ``x in [-L/2 + c*cell, -L/2 + (c+1)*cell]`` and row 0 is the top row (largest y), so the grid's
    "up" is +y. ``L = size * cell_size``; the grid is centred on the origin.
    """
    root = ET.parse(ant_xml).getroot()
    world = root.find("worldbody")
    if world is None:
        raise ValueError(f"{ant_xml} has no <worldbody>.")
    asset = root.find("asset")
    if asset is None:
        asset = ET.SubElement(root, "asset")
    # Matte tiles, so that the colours stay distinguishable under the ant model's lights.
    ET.SubElement(
        asset, "material", name="pinpad_matte", specular="0", shininess="0", reflectance="0"
    )
    half = 0.5 * cell_size
    for cell in range(size * size):
        x, y = cell_centre(cell, size, cell_size)
        ET.SubElement(
            world,
            "geom",
            name=f"pinpad_tile_{cell}",
            type="box",
            pos=f"{x:.6g} {y:.6g} 0.005",
            size=f"{0.97 * half:.6g} {0.97 * half:.6g} 0.005",
            contype="0",
            conaffinity="0",
            material="pinpad_matte",
            rgba="0.8 0.8 0.8 1",
        )
    ET.SubElement(
        world,
        "geom",
        name="pinpad_wall",
        type="box",
        pos=f"0 0 {_HIDDEN_Z}",
        size=f"{0.97 * half:.6g} {0.97 * half:.6g} 0.4",
        contype="0",
        conaffinity="0",
        material="pinpad_matte",
        rgba=" ".join(map(str, _WALL_RGBA)),
    )
    return ET.tostring(root, encoding="unicode")


def cell_centre(cell: int, size: int, cell_size: float) -> tuple[float, float]:
    """World (x, y) of a cell's centre."""
    row, col = divmod(int(cell), size)
    return (col - (size - 1) / 2) * cell_size, ((size - 1) / 2 - row) * cell_size


def paint_layout(
    model: mujoco.MjModel,
    tile_ids: np.ndarray,
    wall_id: int,
    centres: np.ndarray,
    walls: np.ndarray,
    colour_at: np.ndarray,
    size: int,
) -> None:
    """Show a layout in a scene built by :func:`build_model_xml`: recolour the tiles (walls dark,
    colours from :data:`~internal_rl_gym.tasks.COLOUR_RGB`, free cells a checkerboard) and move
    the wall block onto the first wall (under the floor if there is none). No recompilation.

    ``tile_ids`` (cells,) and ``wall_id`` are the geoms' ids, ``centres`` (cells, 2) the cells'
    centres, ``colour_at`` (cells,) the colour on each cell or -1.
    """
    is_wall = np.zeros(size * size, dtype=bool)
    is_wall[walls] = True
    for cell in range(size * size):
        r, c = divmod(cell, size)
        rgba = _NEUTRAL_RGBA[(r + c) % 2]
        if is_wall[cell]:
            rgba = _WALL_RGBA
        elif colour_at[cell] >= 0:
            rgba = (*(0.7 * v / 255 for v in COLOUR_RGB[colour_at[cell]]), 1.0)
        model.geom_rgba[tile_ids[cell]] = rgba
    if len(walls):
        wx, wy = centres[walls[0]]
        model.geom_pos[wall_id] = (wx, wy, 0.4)
    else:
        model.geom_pos[wall_id] = (0.0, 0.0, _HIDDEN_Z)


def check_gl_backend() -> None:
    """MuJoCo's default GLFW backend aborts the whole process on a machine without a display;
    say what to set instead."""
    backend = os.environ.get("MUJOCO_GL", "").lower()
    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    if headless and backend in ("", "glfw"):
        raise RuntimeError(
            "Rendering AntPinpad needs an OpenGL backend, and this machine has no display "
            "(DISPLAY is unset) for MuJoCo's default GLFW backend. Set MUJOCO_GL=egl (GPU or "
            "Mesa EGL) or MUJOCO_GL=osmesa (software) in the environment before Python starts, "
            "e.g. `MUJOCO_GL=egl python train.py`."
        )
