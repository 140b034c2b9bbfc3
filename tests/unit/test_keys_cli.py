"""`rlpost keys` writes a usable CURVE key pair, the secret private to its owner, and never overwrites one unasked."""

from __future__ import annotations

import stat

from rlpost.cli import main
from rlpost.transport.curve import load_key_pair, load_public_key


def test_keys_writes_a_public_key_and_a_private_key_pair_and_says_how_to_use_them(tmp_path, capsys):
    assert main(["keys", f"out={tmp_path / 'k'}", "name=robot-1"]) == 0
    public, secret = tmp_path / "k" / "robot-1.key", tmp_path / "k" / "robot-1.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    pub, sec = load_key_pair(secret, "test")
    assert load_public_key(public, "test") == pub and len(sec) == 40
    assert "secret-key" not in public.read_text()
    out = capsys.readouterr().out
    assert f"bridge.curve.server_secret_key={secret}" in out and "--client-key" in out
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["robot-1.key", "robot-1.key_secret"]


def test_keys_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    assert main(["keys", f"out={tmp_path}", "name=pad"]) == 0
    before = (tmp_path / "pad.key_secret").read_bytes()
    assert main(["keys", f"out={tmp_path}", "name=pad"]) == 1
    assert "pad.key: exists; pass force=true" in capsys.readouterr().err
    assert (tmp_path / "pad.key_secret").read_bytes() == before
    assert main(["keys", f"out={tmp_path}", "name=pad", "force=true"]) == 0
    assert (tmp_path / "pad.key_secret").read_bytes() != before
    assert stat.S_IMODE((tmp_path / "pad.key_secret").stat().st_mode) == 0o600


def test_keys_needs_a_plain_name(tmp_path, capsys):
    assert main(["keys", f"out={tmp_path}"]) == 2
    assert "name= is required" in capsys.readouterr().err
    assert main(["keys", f"out={tmp_path}", "name=../evil"]) == 1
    assert "must be a plain file name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
