from __future__ import annotations

from kivy.properties import StringProperty

from mobile_app.app.screens.base import HandsetScreen
from mobile_app.app.widgets import BigButton, Caption, Title
from mobile_app.viewmodels.rounds import RoundRow


class RoundsScreen(HandsetScreen):
    """Today's rounds first, then the ones whose window has not opened under "Upcoming"
    (mobile_app/viewmodels/rounds.py); withdrawn rounds are not listed."""

    empty = StringProperty("")

    def refresh(self) -> None:
        box = self.ids.rounds
        box.clear_widgets()
        view = self.handset.rounds_view()
        self.empty = view.empty
        for row in view.current:
            self._add_round(box, row)
        if view.upcoming:
            box.add_widget(Title(text=view.upcoming_title, color=(0.1, 0.3, 0.8, 1)))
            for row in view.upcoming:
                self._add_round(box, row)

    def _add_round(self, box, row: RoundRow) -> None:
        box.add_widget(Title(text=row.title))
        box.add_widget(Caption(text=row.caption))
        for s in row.sites:
            # tomorrow's sites are listed, but not highlighted as today's work
            b = BigButton(text=s.text, ident=s.ident, primary=not s.done and not row.upcoming)
            b.bind(on_release=lambda _b, rid=row.round_id, sid=s.site_id: self._open(rid, sid))
            box.add_widget(b)

    def _open(self, round_id: int, site_id: int) -> None:
        if self.handset.round_withdrawn(round_id):  # withdrawn while the list was on screen
            self.refresh()
            return
        self.app.go("checklist", visit=(round_id, site_id))
