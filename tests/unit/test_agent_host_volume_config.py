"""The dev agent's config file (`nomadmesh agent --dev --config FILE`): Nomad's client.host_volume
blocks are taken, anything else is refused naming the file and the field (exit 2); and the group
`volume` / task `volume_mount` blocks decode and validate as Nomad's."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nomadmesh import jobspec
from nomadmesh.agent.nomad.host_volumes import ConfigError, load_config
from nomadmesh.cli.main import cli


def test_host_volumes_are_read_from_the_client_block(tmp_path: Path) -> None:
    cfg = tmp_path / "client.hcl"
    cfg.write_text(f'client {{\n  host_volume "data" {{\n    path = "{tmp_path}"\n    read_only = true\n  }}\n'
                   f'  host_volume "b" {{\n    path = "{tmp_path}/"\n  }}\n}}\n')
    assert load_config(cfg) == {"data": {"Name": "data", "Path": str(tmp_path), "ReadOnly": True, "ID": ""},
                                "b": {"Name": "b", "Path": str(tmp_path), "ReadOnly": False, "ID": ""}}


@pytest.mark.parametrize(("text", "message"), [
    ('datacenter = "dc2"\n', "datacenter: not supported by the dev agent's config"),
    ('server {\n  enabled = true\n}\n', "server: not supported by the dev agent's config"),
    ('client {\n  enabled = true\n}\n', "client.enabled: not supported by the dev agent's config"),
    ('client {\n  host_volume "x" {\n    path = "rel"\n  }\n}\n',
     'client.host_volume "x".path: an absolute path is required'),
    ('client {\n  host_volume "x" {\n    path = "/nonexistent-i14x"\n  }\n}\n',
     'client.host_volume "x".path: /nonexistent-i14x is not a directory'),
    ('client {\n  host_volume "x" {\n    path = "/tmp"\n    owner = "me"\n  }\n}\n',
     'client.host_volume "x".owner: not supported'),
])
def test_anything_else_is_refused_naming_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "client.hcl"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match="^" + str(cfg).replace(".", r"\.") + ": ") as caught:
        load_config(cfg)
    assert message in str(caught.value)
    result = CliRunner().invoke(cli, ["agent", "--dev", "--config", str(cfg)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


VOLUMES = """
job "j" {
  group "g" {
    volume "data" {
      type      = "host"
      source    = "%s"
      read_only = true
    }
    task "t" {
      driver = "exec"
      config { command = "true" }
      volume_mount {
        volume      = "%s"
        destination = "/srv/data"
      }
    }
  }
}
"""


def test_volume_blocks_decode_and_validate_as_nomads() -> None:
    job = jobspec.canonicalize(jobspec.parse_hcl(VOLUMES % ("shared", "data")))
    group = job["TaskGroups"][0]
    assert group["Volumes"]["data"] == {"Name": "data", "Type": "host", "Source": "shared", "ReadOnly": True,
                                        "Sticky": False, "AccessMode": "", "AttachmentMode": "",
                                        "MountOptions": None, "PerAlloc": False}
    assert group["Tasks"][0]["VolumeMounts"] == [{"Volume": "data", "Destination": "/srv/data", "ReadOnly": False,
                                                  "PropagationMode": "private", "SELinuxLabel": ""}]
    assert jobspec.canonicalize(jobspec.from_json(job)) == job  # Job JSON takes them too
    assert jobspec.validate(job) == []
    bad = jobspec.canonicalize(jobspec.parse_hcl(VOLUMES % ("", "nope")))
    assert jobspec.validate(bad) == [
        "Task group g validation failed: Task group volume validation for data failed: 1 error occurred:\n"
        "\t* volume has an empty source\n\n",
        "Task group g validation failed: Task t validation failed: Volume Mount (0) references undefined volume nope"]
