def test_smoke(api, customer):
    r = api.get("agent", "/api/v1/customers/lookup", params={"phone": "+86 138-0013-8000"})
    assert r.status_code == 200, r.text
    print(r.json())
    r = api.post("agent", "/api/v1/tickets", json={"category": "repair", "description": "水管爆裂", "customer_id": customer["id"]})
    assert r.status_code == 201, r.text
    print(r.json())
    r = api.post("agent", "/api/v1/tickets", json={"category": "repair", "description": "again", "location": {"lon": 24.9385, "lat": 60.1699}})
    assert r.status_code == 201, r.text
    print(r.json()["possible_duplicates"])
