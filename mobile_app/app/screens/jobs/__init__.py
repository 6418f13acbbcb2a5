from __future__ import annotations

from kivy.app import App
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from mobile_app.app.screens.base import HandsetScreen


class JobRowView(RecycleDataViewBehavior, ButtonBehavior, BoxLayout):
    ticket_id = NumericProperty(0)
    title = StringProperty("")
    priority_text = StringProperty("")
    priority_colour = ListProperty([0, 0, 0, 1])
    status_text = StringProperty("")
    sla_text = StringProperty("")
    sla_colour = ListProperty([0, 0, 0, 1])
    distance_text = StringProperty("")

    def on_release(self) -> None:
        App.get_running_app().go("detail", ticket_id=int(self.ticket_id))


class JobsScreen(HandsetScreen):
    count_text = StringProperty("")

    def refresh(self) -> None:
        rows = self.handset.job_rows()
        self.ids.rv.data = [r.as_data() for r in rows]
        self.count_text = self.t("jobs.count", n=len(rows)) if rows else self.t("jobs.empty")
