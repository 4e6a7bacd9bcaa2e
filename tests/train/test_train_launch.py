"""launch/ scripts: valid shell/YAML, and every one runs the same `flashtalker train` (or
`pretrain-e2v`) command whose flags the CLI parser accepts (the 2-process CPU run itself is test_train_scale)."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from flashtalker_jax.cli.main import build_parser

LAUNCH = Path(__file__).resolve().parents[2] / "launch"
SCRIPTS = ["local_2proc.sh", "slurm.sbatch", "tpu_vm.sh"]
VALUES = {"COMMAND": "train", "CONFIG": "configs/train_toy.py", "RUN": "runs/x", "PORT": "1234",
          "NPROC": "2", "i": "0", "NUM_PROCESSES": "2", "JOB_COMPLETION_INDEX": "1", "extra": ""}


def flashtalker_args(text: str) -> list[str]:
    """The arguments after `flashtalker` in a launcher, with its variables filled in."""
    line = re.search(r"flashtalker\"? (\"?\$COMMAND.*?)(?:\\\n|\n|$)", text.replace("\\\n", " ")).group(1)
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: VALUES.get(m.group(1), ""), line).replace('"$@"', "")
    tokens = shlex.split(line.replace('"', ''))  # values hold no spaces: drop the shell quoting
    redirect = [i for i, t in enumerate(tokens) if t[0] in ">&" or t.startswith("2>")]
    return tokens[:redirect[0]] if redirect else tokens


@pytest.mark.parametrize("command,extra", [("train", []), ("pretrain-e2v", ["--data", "ds"])])
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_valid_bash_running_the_shared_command(name, command, extra, monkeypatch):
    """COMMAND defaults to train and may name pretrain-e2v, which takes the same flags (its
    --data comes through the launcher's extra arguments)."""
    text = (LAUNCH / name).read_text()
    subprocess.run(["bash", "-n", str(LAUNCH / name)], check=True)
    assert re.search(r"^COMMAND=\$\{COMMAND:-train\}", text, re.M)
    monkeypatch.setitem(VALUES, "COMMAND", command)
    args = build_parser().parse_args(flashtalker_args(text) + extra)
    assert args.command == command and args.resume and args.config == "configs/train_toy.py"


def test_kubernetes_manifest_is_an_indexed_job_with_coordinator():
    import yaml
    service, job = yaml.safe_load_all((LAUNCH / "k8s_job.yaml").read_text())
    assert service["spec"]["clusterIP"] == "None"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["COMMAND"] == "train" and int(env["NUM_PROCESSES"]) == spec["completions"]
    args = build_parser().parse_args(flashtalker_args(container["args"][0]))
    assert args.coordinator == "flashtalker-train-0.flashtalker-train:1234"
    assert (args.num_processes, args.process_id) == (2, 1)
