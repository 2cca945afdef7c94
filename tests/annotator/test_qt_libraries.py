"""The check for the system libraries Qt's xcb plugin needs, fed fake ldd outputs."""

from pathlib import Path

import pytest

from annotator.cli import main
from annotator.cli.qt_libraries import (
    QtPlatformUnavailable,
    check_qt_platform,
    install_hint,
    missing_libraries,
    uses_xcb,
)

# ldd of PySide6 6.11's libqxcb.so on a fresh Debian 12 (abridged).
LDD_FRESH_DEBIAN = """\
\tlinux-vdso.so.1 (0x00007f4d31397000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f4d312c9000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f4d311e6000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-util.so.1 => /lib/x86_64-linux-gnu/libxcb-util.so.1 (0x00007f4d311d7000)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f4d31399000)
"""
LDD_COMPLETE = "\n".join(line for line in LDD_FRESH_DEBIAN.splitlines() if "not found" not in line)
XCB_SESSION = {"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}


def test_missing_libraries_lists_each_not_found_soname_once_in_order():
    assert missing_libraries(LDD_FRESH_DEBIAN) == [
        "libxcb-cursor.so.0",
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
    ]
    assert missing_libraries(LDD_COMPLETE) == []
    assert missing_libraries("") == []


def test_install_hint_is_one_line_with_the_exact_debian_command():
    hint = install_hint(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "\n" not in hint
    assert "libxcb-cursor.so.0, libxcb-icccm.so.4, libxcb-keysyms.so.1" in hint
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1;" in hint
    assert "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms;" in hint
    assert "elsewhere" in hint


def test_install_hint_names_a_package_once_and_sends_unknown_libraries_to_apt_file():
    hint = install_hint(["libglib-2.0.so.0", "libgthread-2.0.so.0", "libfoo.so.9"])
    assert "sudo apt-get install libglib2.0-0;" in hint
    assert "apt-file search libfoo.so.9" in hint
    with pytest.raises(ValueError):
        install_hint([])


@pytest.mark.parametrize(
    "platform, environ, expected",
    [
        ("linux", XCB_SESSION, True),
        ("linux", {}, True),
        ("linux", {"QT_QPA_PLATFORM": "xcb"}, True),
        ("linux", {"QT_QPA_PLATFORM": "offscreen"}, False),
        ("linux", {"QT_QPA_PLATFORM": "wayland;xcb"}, False),
        ("linux", {"QT_QPA_PLATFORM": "vnc:size=800x600"}, False),
        ("linux", {"XDG_SESSION_TYPE": "wayland"}, False),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "tty"}, False),
        ("darwin", XCB_SESSION, False),
        ("win32", {}, False),
    ],
)
def test_uses_xcb_follows_the_platform_and_qt_qpa_platform(platform, environ, expected):
    assert uses_xcb(platform, environ) is expected


def test_check_raises_with_the_hint_when_libraries_are_missing():
    plugin = Path("/venv/PySide6/Qt/plugins/platforms/libqxcb.so")
    seen = []

    def ldd(path):
        seen.append(path)
        return LDD_FRESH_DEBIAN

    with pytest.raises(QtPlatformUnavailable, match="apt-get install libxcb-cursor0 libxcb-icccm4"):
        check_qt_platform(platform="linux", environ=XCB_SESSION, plugin=lambda: plugin, ldd=ldd)
    assert seen == [plugin]


def test_check_names_a_missing_display_once_the_libraries_are_there():
    with pytest.raises(QtPlatformUnavailable, match="DISPLAY is not set.*xvfb-run"):
        check_qt_platform(
            platform="linux",
            environ={"XDG_SESSION_TYPE": "tty"},
            plugin=lambda: Path("libqxcb.so"),
            ldd=lambda path: LDD_COMPLETE,
        )


def test_check_passes_when_complete_off_xcb_or_without_plugin_or_ldd():
    def never(path):
        raise AssertionError("ldd must not run")

    plugin = Path("libqxcb.so")
    check_qt_platform(
        platform="linux", environ=XCB_SESSION, plugin=lambda: plugin, ldd=lambda path: LDD_COMPLETE
    )
    check_qt_platform(
        platform="linux", environ={"QT_QPA_PLATFORM": "offscreen"}, plugin=lambda: plugin, ldd=never
    )
    check_qt_platform(platform="linux", environ=XCB_SESSION, plugin=lambda: None, ldd=never)
    check_qt_platform(
        platform="linux", environ=XCB_SESSION, plugin=lambda: plugin, ldd=lambda path: None
    )


def test_etmira_annotate_stops_before_qt_with_one_line(monkeypatch, capsys):
    import annotator.cli.qt_libraries as qt_libraries

    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(qt_libraries, "xcb_plugin", lambda: Path("libqxcb.so"))
    monkeypatch.setattr(qt_libraries, "_ldd", lambda path: LDD_FRESH_DEBIAN)
    assert main(["annotate", "--screenshot", "never.png"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("etmira annotate: error: Qt's xcb platform plugin cannot load")
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in err
    assert not Path("never.png").exists()
