from __future__ import annotations

from kivy.graphics import Color, Rectangle
from kivy.properties import NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.modalview import ModalView

from mobile_app.app.screens.base import HandsetScreen
from mobile_app.app.widgets import BigButton, Field, Title
from mobile_app.viewmodels import jobs as jobs_vm


class Sheet(ModalView):
    """The second tap of "resolved" and "cannot fix": one button per code sends at once."""

    def __init__(self, title: str, options: list[tuple[str, str]], on_pick, notes_hint: str,
                 ident: str, **kw) -> None:
        super().__init__(size_hint=(0.94, None), auto_dismiss=True, **kw)
        box = BoxLayout(orientation="vertical", padding=12, spacing=10, size_hint_y=None)
        box.bind(minimum_height=box.setter("height"))
        with box.canvas.before:  # black on white, like every screen
            Color(1, 1, 1, 1)
            bg = Rectangle(pos=box.pos, size=box.size)
        box.bind(pos=lambda w, v: setattr(bg, "pos", v), size=lambda w, v: setattr(bg, "size", v))
        box.add_widget(Title(text=title))
        self.notes = Field(hint_text=notes_hint, ident=f"{ident}.notes")
        box.add_widget(self.notes)
        for value, text in options:
            btn = BigButton(text=text, primary=True, ident=f"{ident}.{value}")
            btn.bind(on_release=lambda _b, v=value: self._pick(on_pick, v))
            box.add_widget(btn)
        self.add_widget(box)
        self.height = 76 * (len(options) + 2) + 60
        self.box = box

    def _pick(self, on_pick, value: str) -> None:
        self.dismiss()
        on_pick(value, self.notes.text.strip())


class DetailScreen(HandsetScreen):
    ticket_id = NumericProperty(0)
    title = StringProperty("")
    status_text = StringProperty("")
    sla_text = StringProperty("")
    customer = StringProperty("")
    phone = StringProperty("")
    address = StringProperty("")
    description = StringProperty("")
    sheet: Sheet | None = None

    def show(self, ticket_id: int | None = None, **kw) -> None:
        if ticket_id is not None:
            self.ticket_id = ticket_id
        self.refresh()

    def refresh(self) -> None:
        job = self.handset.job(int(self.ticket_id)) if self.ticket_id else None
        box = self.ids.actions
        if job is None:
            box.clear_widgets()
            self._built = None
            return
        d = jobs_vm.detail(job, self.handset.now(), self.app.lang)
        self.title = f"#{d.ticket_id} {d.title}"
        self.status_text = f"{d.status_text} · {d.priority_text}"
        self.sla_text = d.sla_text
        self.customer, self.address, self.description = d.customer, d.address, d.description
        self.phone = d.phone or self.t("detail.no_phone")
        self._uris = (d.directions_uri, d.directions_url, d.call_uri)
        self.ids.directions.disabled = d.directions_uri is None
        self.ids.call.disabled = d.call_uri is None
        built = (int(self.ticket_id), self.app.lang, tuple(a.key for a in d.actions))
        # the buttons are rebuilt only when they change: a periodic refresh must not swallow a press
        if built != getattr(self, "_built", None):
            self._built = built
            box.clear_widgets()
            self._add_actions(box, d.actions)
        sheet = self.sheet
        if sheet is not None and sheet._window is not None and sheet.lang != self.app.lang:
            notes = sheet.notes.text  # the language changed under an open sheet: redo it
            sheet.dismiss(animation=False)
            self.act(sheet.key)
            self.sheet.notes.text = notes

    def _add_actions(self, box, actions) -> None:
        for a in actions:
            btn = BigButton(text=a.text, primary=a.primary, danger=a.key == "cannot_fix",
                            ident=f"action.{a.key}")
            btn.bind(on_release=lambda _b, key=a.key: self.act(key))
            box.add_widget(btn)

    def act(self, key: str) -> None:
        tid = int(self.ticket_id)
        if key in jobs_vm.STEP_STATUS:
            self.handset.step(tid, key)
        elif key == "scan":
            self.app.go("scan", ticket_id=tid)
        elif key == "checklist":
            self.app.go("checklist", ticket_id=tid)
        elif key == "resolve":
            self.sheet = Sheet(self.t("resolve.title"),
                               [(c, self.t(f"resolution.{c}")) for c in jobs_vm.RESOLUTIONS],
                               lambda code, notes: self._resolved(code, notes),
                               self.t("resolve.notes"), "resolve")
            self.sheet.key, self.sheet.lang = key, self.app.lang
            self.sheet.open(animation=False)
        elif key == "cannot_fix":
            self.sheet = Sheet(self.t("cannot.title"),
                               [(r, self.t(f"reason.{r}")) for r in jobs_vm.CANNOT_FIX_REASONS],
                               lambda reason, notes: self._cannot(reason, notes),
                               self.t("resolve.notes"), "cannot")
            self.sheet.key, self.sheet.lang = key, self.app.lang
            self.sheet.open(animation=False)

    def _resolved(self, code: str, notes: str) -> None:
        self.handset.resolve(int(self.ticket_id), code, notes)
        self.app.go("jobs")

    def _cannot(self, reason: str, notes: str) -> None:
        self.handset.cannot_fix(int(self.ticket_id), reason, notes)
        self.app.go("jobs")

    def directions(self) -> None:
        geo, web, _ = self._uris
        launcher = self.handset.platform.launcher
        launcher.open(geo if self.handset.platform.name == "android" else web)

    def call(self) -> None:
        self.handset.platform.launcher.open(self._uris[2])
