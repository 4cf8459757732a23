from tests.dashboards.conftest import Dash


async def test_pages_render_for_admin(dash: Dash) -> None:
    await dash.login("admin")
    for path in [
        "/digest",
        "/digest?all=1",
        f"/flags/{dash.world.flags['banquet']}",
        "/tickets",
        f"/tickets/{dash.world.tickets['water']}",
        "/stats",
        "/stats?dim=village&gran=week",
        "/stats?dim=category&gran=day",
        "/broadcasts",
        "/exports",
        "/rules",
        "/bench",
        "/audit",
    ]:
        resp = await dash.client.get(path)
        assert resp.status == 200, (path, await resp.text())
