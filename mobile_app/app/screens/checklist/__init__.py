from __future__ import annotations

from kivy.properties import NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from mobile_app.app.screens.base import HandsetScreen
from mobile_app.app.widgets import BigButton, Body, Caption, ChoiceButton, Field, SignaturePad
from mobile_app.viewmodels.checklist import Checklist, file_answer, item_label


class ChecklistScreen(HandsetScreen):
    ticket_id = NumericProperty(0)
    message = StringProperty("")
    checklist: Checklist | None = None

    visit: tuple[int, int] | None = None
    started_at = None

    def show(self, ticket_id: int | None = None, visit: tuple[int, int] | None = None,
             back: bool = False, **kw) -> None:
        if back:  # returning from the scan screen: keep what was entered, show the scan
            self._show_visit_scan()
            return
        self.visit = tuple(visit) if visit else None
        if self.visit:
            self.ticket_id = 0
            self.checklist = self.handset.visit_checklist(*self.visit)
            self.started_at = self.handset.now()
        else:
            if ticket_id is not None:
                self.ticket_id = ticket_id
            self.checklist = self.handset.checklist(int(self.ticket_id))
        self.message = ""
        self.build_items()

    def refresh(self) -> None:
        if self.checklist is not None and self.checklist.lang != self.app.lang:
            self.checklist.lang = self.app.lang
            self.build_items(keep_strokes=True)

    def build_items(self, keep_strokes: bool = False) -> None:
        box = self.ids.item_box
        strokes = {i: list(p.strokes) for i, p in getattr(self, "pads", {}).items()} \
            if keep_strokes else {}
        box.clear_widgets()
        self.errors: dict[str, Body] = {}
        self.pads: dict[str, SignaturePad] = {}
        cl = self.checklist
        assert cl is not None
        if self.visit:  # a site visit rests on the site's tag: scan it first
            scan = BigButton(ident="visit.scan", primary=True, text=self.t("action.scan"))
            scan.bind(on_release=lambda _b: self.app.go("scan", back_to="checklist"))
            box.add_widget(scan)
            self.scan_button = scan
            self._show_visit_scan()
        for item in cl.items:
            iid, kind = item["id"], item["kind"]
            star = " *" if item.get("required") else ""
            box.add_widget(Caption(text=item_label(item, cl.lang) + star, bold=True,
                                   color=(0, 0, 0, 1)))
            if kind in ("number", "text"):
                f = Field(ident=f"item.{iid}", text=str(cl.answers.get(iid, "")),
                          input_filter="float" if kind == "number" else None)
                f.bind(text=lambda w, v, i=iid: self.answer(i, v))
                box.add_widget(f)
            elif kind in ("choice", "yes_no"):
                options = ([(o["value"], o["label"].get(cl.lang) or o["value"]) for o in item["options"]]
                           if kind == "choice" else
                           [(True, self.t("checklist.yes")), (False, self.t("checklist.no"))])
                row = BoxLayout(size_hint_y=None, height=72 * ((len(options) + 1) // 2), spacing=6)
                row.orientation = "horizontal" if len(options) <= 2 else "vertical"
                grid = row
                if len(options) > 2:
                    from kivy.uix.gridlayout import GridLayout

                    grid = GridLayout(cols=2, spacing=6, size_hint_y=None,
                                      height=76 * ((len(options) + 1) // 2))
                for value, text in options:
                    b = ChoiceButton(text=text, group=f"{self.ticket_id}.{iid}",
                                     ident=f"item.{iid}.{str(value).lower()}",
                                     state="down" if cl.answers.get(iid, object()) == value else "normal")
                    b.bind(on_release=lambda btn, i=iid, v=value: self.answer(
                        i, v if btn.state == "down" else None))
                    grid.add_widget(b)
                box.add_widget(grid)
            elif kind == "photo":
                b = BigButton(ident=f"item.{iid}", text=self.t(
                    "checklist.photo_taken" if iid in cl.answers else "checklist.photo"))
                b.bind(on_release=lambda btn, i=iid: self.take_photo(i, btn))
                box.add_widget(b)
            elif kind == "signature":
                pad = SignaturePad(ident=f"item.{iid}")
                self.pads[iid] = pad
                pad.strokes = strokes.get(iid, [])
                box.add_widget(Caption(text=self.t("checklist.sign_here")))
                box.add_widget(pad)
                clear = BigButton(ident=f"item.{iid}.clear", text=self.t("checklist.clear"))
                clear.bind(on_release=lambda _b, p=pad, i=iid: (p.clear(), self.answer(i, None)))
                box.add_widget(clear)
            err = Body(text=cl.errors.get(iid, ""), color=(0.75, 0, 0, 1), bold=True)
            self.errors[iid] = err
            box.add_widget(err)

    def _show_visit_scan(self) -> None:
        """The visit's scan button names the tag read since the visit began, and its verdict."""
        if not self.visit or self.started_at is None:
            return
        scans = self.handset.visit_scans(self.started_at)
        if scans:
            last = scans[-1]
            verdict = self.handset.shown_verdict(last)
            self.scan_button.text = self.t("scan.tag", uid=last["uid"]) + " · " + \
                self.t(f"verdict.{verdict}").split(" — ")[0]

    def _media_key(self) -> str:
        return f"visit-{self.visit[0]}-{self.visit[1]}" if self.visit else str(int(self.ticket_id))

    def answer(self, item_id: str, value) -> None:
        cl = self.checklist
        error = cl.set(item_id, value)
        self.errors[item_id].text = error or ""
        self.message = ""

    def take_photo(self, item_id: str, button) -> None:
        path = self.handset.media_path(self._media_key(), item_id, ".png")

        def done(p) -> None:
            if p is not None:
                self.answer(item_id, file_answer(p))
                button.text = self.t("checklist.photo_taken")

        self.handset.platform.camera.take(path, done)

    def save(self) -> None:
        cl = self.checklist
        for iid, pad in self.pads.items():
            if pad.signed:
                path = pad.save(self.handset.media_path(self._media_key(), iid, ".png"))
                self.answer(iid, file_answer(path))
        missing = cl.missing()
        if missing or cl.errors:
            for iid in missing:
                self.errors[iid].text = cl.errors.get(iid) or self.t("checklist.err.required")
            self.message = self.t("checklist.missing", n=len(set(missing) | set(cl.errors)))
            return
        if self.visit:
            self.handset.record_visit(*self.visit, cl, self.started_at)
            self.app.go("rounds")
            return
        self.handset.save_checklist(int(self.ticket_id), cl)
        self.message = self.t("checklist.saved", n=len(cl.answers))
        self.app.go("detail", ticket_id=int(self.ticket_id))
