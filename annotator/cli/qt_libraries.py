"""Find what Qt's xcb platform plugin lacks (system libraries, a display) before Qt aborts.

On Linux, Qt opens its windows through the xcb plugin (``plugins/platforms/libqxcb.so``), which
links against X11 libraries that a fresh system often lacks (``libxcb-cursor0``,
``libxcb-icccm4``, ...). Qt then aborts with a message that names no package. This module runs
``ldd`` on the plugin and turns its "not found" lines into one line naming the libraries and
the command that installs them. It never imports Qt.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from refinement_model.errors import EtmiraError

#: Package names of the libraries the xcb plugin of Qt 6 links, by soname: (Debian/Ubuntu,
#: Fedora). Arch and openSUSE use the Fedora names for most of them.
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
}


class QtPlatformUnavailable(EtmiraError):
    """Qt could not open a window: its platform plugin lacks system libraries, or no display."""


#: Why Qt would abort when the xcb plugin loads but finds no X server to talk to.
NO_DISPLAY = (
    "no display: DISPLAY is not set, so Qt cannot open a window; run on a desktop, "
    "under a virtual display (xvfb-run -a etmira annotate ...), or with "
    "QT_QPA_PLATFORM=offscreen for --screenshot"
)


def missing_libraries(ldd_output: str) -> list[str]:
    """Sonames that ``ldd`` reports as "not found", in the order first reported, once each.

    Parameters
    ----------
    ldd_output : str
        What ``ldd FILE`` printed (lines like ``libxcb-icccm.so.4 => not found``).

    Returns
    -------
    sonames : list of str
    """
    missing = []
    for line in ldd_output.splitlines():
        name, arrow, target = line.strip().partition("=>")
        if arrow and target.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def install_hint(sonames) -> str:
    """One line naming the missing libraries and the commands that install them.

    Parameters
    ----------
    sonames : sequence of str
        Library file names, as :func:`missing_libraries` gives them (non-empty).
    """
    sonames = list(sonames)
    if not sonames:
        raise ValueError("sonames must name at least one library")
    debian = _unique(PACKAGES[name][0] for name in sonames if name in PACKAGES)
    fedora = _unique(PACKAGES[name][1] for name in sonames if name in PACKAGES)
    unknown = [name for name in sonames if name not in PACKAGES]
    commands = []
    if debian:
        commands.append(f"on Debian/Ubuntu: sudo apt-get install {' '.join(debian)}")
    if fedora:
        commands.append(f"on Fedora: sudo dnf install {' '.join(fedora)}")
    if unknown:
        commands.append(
            f"find the package that provides {', '.join(unknown)} "
            f"(Debian/Ubuntu: apt-file search {unknown[0]})"
        )
    return (
        f"Qt's xcb platform plugin cannot load: the system lacks {', '.join(sonames)}; "
        f"{'; '.join(commands)}; elsewhere install the packages that provide these "
        "libraries (for --screenshot without a display, QT_QPA_PLATFORM=offscreen needs "
        "none of them)"
    )


def uses_xcb(platform: str, environ: Mapping[str, str]) -> bool:
    """True when Qt would open its windows through the xcb plugin.

    That is on Linux (and the BSDs) unless ``QT_QPA_PLATFORM`` names another plugin
    (``offscreen``, ``wayland``, ...) or, with it unset, the session is a Wayland one.

    Parameters
    ----------
    platform : str
        A ``sys.platform`` value.
    environ : mapping of str to str
        The environment (``QT_QPA_PLATFORM``, ``XDG_SESSION_TYPE``, ``WAYLAND_DISPLAY``).
    """
    if platform.startswith(("win", "cygwin", "darwin")):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return environ.get("XDG_SESSION_TYPE") != "wayland" and not environ.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """Path of PySide6's xcb platform plugin, found without importing Qt; None without one."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = (
        Path(next(iter(spec.submodule_search_locations)))
        / "Qt"
        / "plugins"
        / "platforms"
        / "libqxcb.so"
    )
    return plugin if plugin.is_file() else None


def _ldd(path: Path) -> str | None:
    try:
        done = subprocess.run(
            ["ldd", os.fspath(path)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no ldd here: Qt's own message will have to do
    return done.stdout


def check_qt_platform(
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    plugin: Callable[[], Path | None] | None = None,
    ldd: Callable[[Path], str | None] | None = None,
) -> None:
    """Raise :class:`QtPlatformUnavailable` when Qt would use the xcb plugin and ``ldd`` finds
    some of its libraries missing (with :func:`install_hint`'s line), or ``DISPLAY`` is not set
    (:data:`NO_DISPLAY`); return quietly otherwise, also when the plugin or ``ldd`` cannot be
    found (Qt then reports for itself).

    Parameters
    ----------
    platform, environ : optional
        As :func:`uses_xcb` takes them; default ``sys.platform`` and ``os.environ``.
    plugin : callable() -> Path or None, optional
        Finds the plugin; default :func:`xcb_plugin`.
    ldd : callable(Path) -> str or None, optional
        ``ldd``'s output for a file, None when it cannot run; default runs ``ldd``.
    """
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    if not uses_xcb(platform, environ):
        return
    path = (plugin or xcb_plugin)()
    output = None if path is None else (ldd or _ldd)(path)
    missing = missing_libraries(output or "")
    if missing:
        raise QtPlatformUnavailable(install_hint(missing))
    if not environ.get("DISPLAY"):
        raise QtPlatformUnavailable(NO_DISPLAY)


def _unique(names) -> list[str]:
    return list(dict.fromkeys(names))
