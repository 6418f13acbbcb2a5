from __future__ import annotations

from kivy.properties import StringProperty

from mobile_app.app.screens.base import HandsetScreen
from mobile_app.app.widgets import BigButton, Caption, Title
from mobile_app.viewmodels.jobs import parse_time


class RoundsScreen(HandsetScreen):
    empty = StringProperty("")

    def refresh(self) -> None:
        box = self.ids.rounds
        box.clear_widgets()
        rounds = self.handset.rounds()
        visited = self.handset.visited()
        self.empty = "" if rounds else self.t("rounds.empty")
        for r in rounds:
            sites = sorted(r.get("sites") or [], key=lambda s: s.get("position", 0))
            done = sum(1 for s in sites if (r["round_id"], s["site_id"]) in visited)
            box.add_widget(Title(text=str(r.get("plan_name") or r["round_id"])))
            start, end = parse_time(r.get("window_start")), parse_time(r.get("window_end"))
            window = f"{start:%m-%d %H:%M} – {end:%m-%d %H:%M} UTC · " if start and end else ""
            box.add_widget(Caption(text=window + self.t("rounds.sites", done=done, n=len(sites))))
            for s in sites:
                mark = "✓ " if (r["round_id"], s["site_id"]) in visited else ""
                b = BigButton(text=f"{mark}{s.get('position')}. {s.get('name')}",
                              ident=f"round.{r['round_id']}.site.{s['site_id']}",
                              primary=not mark)
                b.bind(on_release=lambda _b, rid=r["round_id"], sid=s["site_id"]:
                       self.app.go("checklist", visit=(rid, sid)))
                box.add_widget(b)
