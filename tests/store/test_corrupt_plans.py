"""A stored plan that cannot be read is still shown (from its row), never a 500."""

from helpers import execute

from madre.contracts.intake import ControlRequest


def test_a_plan_whose_stored_json_is_corrupt_is_still_shown_not_a_500(madre, client):
    answer = madre.control(ControlRequest(target="hermes", action="delete"))
    execute(madre, "UPDATE tasks SET plan_json = ? WHERE uuid = ?", ("{bad", answer.plan_id))
    detail = client.get(f"/madre/plans/{answer.plan_id}")
    assert detail.status_code == 200
    assert "stored_plan_unreadable" in detail.json()["intent"]["warnings"]
    listing = client.get("/madre/plans")
    assert listing.status_code == 200
    assert any(p["plan_id"] == answer.plan_id for p in listing.json()["plans"])
