"""The names `nomadmesh release` writes on the Consul entries it changes, in one place for the three
that read them: the release itself (nomadmesh.release.entries), deploy and plan (mesh.policy: an
entry a release holds is left alone) and the web UI (ui.routing: the running release and its steps).
"""
from __future__ import annotations

RELEASE_KEY = "nomadmesh-release"  # Meta: the running release's id, on its resolver and splitter
RESOLVER_KEY = "nomadmesh-release-resolver"  # Meta: "created" | "amended" (the resolver to restore)
STEPS_KEY = "nomadmesh-release-steps"  # splitter Meta: "10,50,100", the canary's percent at each step
STEP_KEY = "nomadmesh-release-step"  # splitter Meta: "2", the current step, from 1
LAST_KEY = "nomadmesh-release-last"  # splitter Meta: the verdict on the step before, in words
STABLE, CANARY = "stable", "canary"  # the resolver subsets a release adds
