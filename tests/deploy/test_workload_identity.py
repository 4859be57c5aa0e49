"""deploy/k8s/overlays/workload-identity: the sidecar signs in to Entra with the pod's
projected service-account token, and nothing else about the deployment changes."""

from __future__ import annotations

from pathlib import Path

import yaml

from sidecar.config.loading import parse_config
from tests.deploy import k8s

OVERLAY = k8s.K8S / "overlays" / "workload-identity"
RENDERED = k8s.render(OVERLAY)
# Entra's audience for a federated credential (Learn, workload identity federation).
ENTRA_AUDIENCE = "api://AzureADTokenExchange"


def test_the_config_reads_the_token_the_sidecar_has_projected(tmp_path: Path) -> None:
    pod = k8s.desk_pod(RENDERED)["spec"]
    sidecar = k8s.container(pod, k8s.SIDECAR)
    config = parse_config(k8s.local_sidecar_config(RENDERED, tmp_path).read_text(), env={})
    (tenant,) = config.sso_tenants
    assert tenant.sso is not None
    token_file = Path(tenant.sso.federated_token_file or "")
    (mount,) = [m for m in sidecar["volumeMounts"] if Path(m["mountPath"]) == token_file.parent]
    assert mount.get("readOnly") is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    (source,) = volumes[mount["name"]]["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["path"] == token_file.name
    assert token["audience"] == ENTRA_AUDIENCE
    # kubelet rewrites the file at 80 % of this; Entra needs it unexpired when sent.
    assert 600 <= token["expirationSeconds"] <= 86400


def test_the_pod_runs_as_its_own_service_account_and_only_the_sidecar_gets_the_token() -> None:
    pod = k8s.desk_pod(RENDERED)["spec"]
    account = k8s.one(RENDERED, "ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["name"] == "ticketlog-sso"  # the federated credential's subject
    # Neither the account nor the pod hands out the general API token.
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False
    projected = {v["name"] for v in pod["volumes"] if "projected" in v}
    desk = k8s.container(pod, k8s.DESK)
    assert not projected & {m["name"] for m in desk.get("volumeMounts", [])}


def test_only_the_credential_changes_and_no_secret_is_shipped() -> None:
    base = yaml.safe_load(k8s.sidecar_config_text(k8s.render(k8s.BASE)))
    overlay = yaml.safe_load(k8s.sidecar_config_text(RENDERED))
    (sso,) = [t["sso"] for t in overlay["tenants"] if "sso" in t]
    assert "client_secret_file" not in sso
    sso["client_secret_file"] = sso.pop("federated_token_file")
    for tenant in base["tenants"]:
        if "sso" in tenant:
            tenant["sso"]["client_secret_file"] = sso["client_secret_file"]
    assert overlay == base
    # No Secret is rendered (the operator creates it, see deploy/k8s/examples/), and the
    # config names no client secret file.
    assert not k8s.by_kind(RENDERED, "Secret")
