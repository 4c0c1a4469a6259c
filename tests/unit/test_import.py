import subprocess
import sys

import pyliveupdate


def test_engine_module_loads():
    assert pyliveupdate._engine.__name__ == "pyliveupdate._engine"


def test_old_python_is_refused_with_a_clear_message(tmp_path):
    # Simulate an older interpreter by faking version_info before import.
    code = (
        "import sys\n"
        "sys.version_info = (3, 11, 9, 'final', 0)\n"
        "try:\n"
        "    import pyliveupdate\n"
        "except ImportError as e:\n"
        "    print('REFUSED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "REFUSED" in out.stdout and "3.12 or newer" in out.stdout, out


def test_pure_python_parts_load_without_the_c_core():
    # The channel (shared with the controller) must not need the C extension.
    code = (
        "import sys\n"
        "sys.modules['pyliveupdate._engine'] = None   # as if the extension were missing\n"
        "from pyliveupdate import protocol\n"
        "import pyliveupdate_controller.server\n"
        "print('LOADED', protocol.MAX_FRAME)\n"
        "try:\n"
        "    from pyliveupdate import engine\n"
        "except ImportError as e:\n"
        "    print('ENGINE', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED" in out.stdout, out
    assert "ENGINE" in out.stdout, out
