"""`sfcti demo --no-wait` (what `make demo` runs) on a fresh instance folder, and again."""

import os
import subprocess
import sys

from helpers import ROOT


def run_demo(home):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SFCTI_HOME", None)
    done = subprocess.run([sys.executable, "-c", "from cli import main; main()", "--home", str(home),
                           "demo", "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_runs_on_a_fresh_instance_and_again(tmp_path):
    home = tmp_path / "fresh"
    out = run_demo(home)
    assert "株式会社デモ商事" in out                      # dialled +81..., stored 03-5555-0101
    assert "株式会社デモ商事 / 山田 花子" in out           # full-width dialled, mobile stored
    assert "サンプル工業 / 見込 一郎" in out               # a Lead
    assert "非通知" in out and "status=withheld" in out
    assert "03-9876-0000 未登録" in out
    assert "'registered': 5" in out
    history = out.split("Call history")[1]
    assert history.count("株式会社デモ商事") >= 3
    again = run_demo(home)
    assert "株式会社デモ商事 / 山田 花子" in again and "Traceback" not in again
