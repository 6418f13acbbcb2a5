"""The round report: HTML with photos and signatures inline (en, zh-CN), CSV, and PDF printed by
headless Chromium — rendered to PNG with pdftoppm and its text read back with pdftotext."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess

import pytest
from sqlalchemy.orm import Session

from server.inspections import report, service
from tests.server.inspections_support import PNG, World, attachment_refs, near, png
from tests.server.tags_support import HELSINKI

SIGNATURE = png(60, 24, (250, 250, 250))


@pytest.fixture
def done_round(api, settings, clock, engine) -> dict:
    w = World(api, settings, clock)
    sites = []
    for i, name in enumerate(("一号泵站 Pump 1", "Valve chamber 2", "Hydrant 3")):
        s = w.site(name, HELSINKI["lon"] + 0.003 * i, HELSINKI["lat"])
        w.tag(s["id"], f"04DE5F1EACC05{i}")
        sites.append(s)
    w.plan([s["id"] for s in sites], window=("07:00", "12:00"))
    with Session(engine) as session:
        (round_id,) = service.generate_rounds(session, clock.now())
        session.commit()
    for data in (PNG, SIGNATURE):
        r = api.client.post("/api/v1/inspections/attachments", content=data,
                            headers={**api.headers("technician"), "Content-Type": "image/png"})
        assert r.status_code == 201, r.text
    refs = attachment_refs(PNG)
    refs[1]["sha256"] = attachment_refs(SIGNATURE)[1]["sha256"]
    v1 = w.visit(sites[0]["id"], scan=w.scan("04DE5F1EACC050"),
                 position=near(HELSINKI, 8), attachments=refs)
    assert (v1["evidence"], v1["flags"]) == ("verified", [])
    loc2 = {"lon": HELSINKI["lon"] + 0.003, "lat": HELSINKI["lat"]}
    v2 = w.visit(sites[1]["id"], scan=None, position=near(loc2, 120),
                 values={"pressure": 7.2, "valve": "closed", "leak": True},
                 attachments=attachment_refs(b"\x89PNG never uploaded"))
    return {"round_id": round_id, "sites": sites, "visits": [v1, v2]}


def test_html_report_in_both_languages(api, done_round):
    url = f"/api/v1/inspections/rounds/{done_round['round_id']}/report"
    r = api.get("manager", url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for s in done_round["sites"]:
        assert s["name"] in html
    assert html.count('src="data:image/png;base64,') == 2  # photo and signature inline
    assert "not uploaded yet" in html  # the second visit's photo never arrived
    assert "7.2 bar" in html and "Witness signature — 王芳" in html
    assert "[done]" in html and "[pending]" in html
    assert done_round["visits"][0]["hash"] in html
    zh = api.get("manager", url + "?lang=zh-CN").text
    assert '<html lang="zh-CN">' in zh
    for word in ("巡检报告", "已验证", "存疑", "未扫描标签", "GPS 位置距站点过远", "压力",
                 "见证人签名", "尚未上传"):
        assert word in zh, word
    assert api.get("technician", url).status_code == 403
    r = api.get("manager", url + "?format=docx")
    assert r.status_code == 422 and r.json()["error"]["field"] == "format"


def test_csv_report(api, done_round):
    r = api.get("manager", f"/api/v1/inspections/rounds/{done_round['round_id']}/report"
                           "?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["site"], row["state"], row["evidence"]) for row in rows] == [
        ("一号泵站 Pump 1", "done", "verified"), ("Valve chamber 2", "done", "flagged"),
        ("Hydrant 3", "pending", "")]
    assert rows[1]["flags"] == "no_tag_scan gps_too_far value_out_of_range"
    assert rows[0]["hash"] == done_round["visits"][0]["hash"]
    assert '"pressure": 7.2' in rows[1]["values"]


@pytest.mark.slow
def test_pdf_report_renders(api, done_round, tmp_path):
    for tool in ("pdftoppm", "pdftotext"):
        assert shutil.which(tool), f"{tool} missing: apt-get install poppler-utils " \
                                   "(scripts/os-packages.txt)"
    r = api.get("manager", f"/api/v1/inspections/rounds/{done_round['round_id']}/report"
                           "?format=pdf&lang=zh-CN")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
    pdf = tmp_path / "round.pdf"
    pdf.write_bytes(r.content)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=60)
    (page,) = tmp_path.glob("page*.png")
    data = page.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000
    words = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, timeout=60,
                           capture_output=True, text=True).stdout
    for word in ("巡检报告", "一号泵站", "已验证", "见证人签名"):
        assert word in words, word  # CJK glyphs are in the PDF as text, not tofu


def test_pdf_without_chromium_is_a_clear_503():
    with pytest.raises(report.PdfUnavailable, match="cannot run /nonexistent/chromium"):
        report.render_pdf("<html></html>", "/nonexistent/chromium")
