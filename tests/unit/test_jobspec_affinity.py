"""`affinity` blocks: decoded (operator attributes as for constraints), weight 50 by default, and
validated with Nomad's Affinity.Validate texts."""
from __future__ import annotations

import pytest

from nomadmesh.jobspec import canonicalize, parse_hcl, validate

JOB = """
job "j" {
  affinity {
    attribute = "${node.datacenter}"
    value     = "dc1"
  }
  group "g" {
    affinity {
      attribute = "${meta.rack}"
      regexp    = "r[0-9]+"
      weight    = -20
    }
    task "t" {
      driver = "raw_exec"
      config { command = "true" }
      affinity {
        attribute = "${attr.kernel.name}"
        operator  = "!="
        value     = "windows"
        weight    = 100
      }
    }
  }
}
"""


def test_affinities_decode_with_nomads_defaults() -> None:
    job = canonicalize(parse_hcl(JOB))
    assert job["Affinities"] == [{"LTarget": "${node.datacenter}", "RTarget": "dc1", "Operand": "=", "Weight": 50}]
    group = job["TaskGroups"][0]
    assert group["Affinities"] == [{"LTarget": "${meta.rack}", "RTarget": "r[0-9]+", "Operand": "regexp",
                                    "Weight": -20}]
    assert group["Tasks"][0]["Affinities"][0]["Operand"] == "!=" and group["Tasks"][0]["Affinities"][0]["Weight"] == 100
    assert validate(job) == []


@pytest.mark.parametrize(("affinity", "error"), [
    ('attribute = "${meta.a}"\n value = "x"\n weight = 0', "Affinity weight cannot be zero"),
    ('attribute = "${meta.a}"\n value = "x"\n weight = 101', "Affinity weight must be within the range [-100,100]"),
    ('attribute = "${meta.a}"\n operator = "~"\n value = "x"', 'Unknown affinity operator "~"'),
    ('attribute = "${meta.a}"\n regexp = "("', "Regular expression failed to compile"),
    ('value = "x"', "No LTarget provided but is required"),
    ('attribute = "${meta.a}"', 'Operator "=" requires an RTarget'),
])
def test_invalid_affinities_get_nomads_errors(affinity: str, error: str) -> None:
    job = canonicalize(parse_hcl(JOB.replace('attribute = "${node.datacenter}"\n    value     = "dc1"', affinity)))
    errors = [str(e) for e in validate(job)]
    assert any(e.startswith("Affinity 1 validation failed: " + error) for e in errors), errors


def test_system_jobs_may_not_have_affinities() -> None:
    job = canonicalize(parse_hcl(JOB.replace('job "j" {', 'job "j" {\n  type = "system"', 1)))
    assert "System jobs may not have an affinity block" in [str(e) for e in validate(job)]
