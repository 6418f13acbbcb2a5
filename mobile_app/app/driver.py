"""Remote control for end-to-end tests and the benchmark: one JSON command per line on
127.0.0.1:<CREWLINE_HANDSET_DRIVER>, executed on the Kivy thread, one JSON answer per line.

Off unless the variable is set. Commands find widgets by their ``ident`` (what a tester would
call "the Accept button") and press them the way a touch does (``trigger_action``: press, then
release), so the same handlers run as for a finger.

``state`` · ``outbox`` · ``idents`` · ``tap {ident}`` · ``tap_job {ticket_id}`` · ``text {ident, value}`` ·
``draw {ident, points}`` · ``scroll {y}`` · ``texts`` · ``screenshot {path}`` ·
``lang {lang}`` · ``gps {lon, lat}`` · ``stop``
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView


class DriverError(Exception):
    pass


class Driver:
    def __init__(self, app, port: int) -> None:
        self.app = app
        self.port = port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(4)

    def start(self) -> None:
        threading.Thread(target=self._serve, name="handset-driver", daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    command = json.loads(line)
                    answer = {"ok": True, "result": self._on_main(command)}
                except Exception as exc:  # report to the test, keep serving
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                f.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                f.flush()

    def _on_main(self, command: dict[str, Any]) -> Any:
        done = threading.Event()
        box: dict[str, Any] = {}

        def run(dt) -> None:
            try:
                box["result"] = getattr(self, "cmd_" + command["cmd"])(**command.get("args", {}))
            except Exception as exc:
                box["error"] = exc
            done.set()

        Clock.schedule_once(run, 0)
        if not done.wait(20):
            raise DriverError(f"{command['cmd']} did not finish on the UI thread")
        if "error" in box:
            raise box["error"]
        result = box.get("result")
        if isinstance(result, threading.Event):  # finished later on the UI thread (screenshots)
            if not result.wait(20):
                raise DriverError(f"{command['cmd']} did not finish")
            return getattr(result, "value", None)
        return result

    # -- helpers ---------------------------------------------------------------------------------
    def _roots(self) -> list:
        modals = [w for w in Window.children if isinstance(w, ModalView)]
        return [*modals, self.app.root_widget]

    def _visible(self, widget) -> bool:
        w = widget
        while w is not None:
            if getattr(w, "opacity", 1) == 0:
                return False
            parent = w.parent
            if parent is not None and hasattr(parent, "current_screen") and \
                    w is not parent.current_screen:
                return False
            w = parent if parent is not w else None
        return True

    def find(self, ident: str):
        for root in self._roots():
            for w in root.walk(restrict=True):
                if getattr(w, "ident", None) == ident and self._visible(w):
                    return w
        raise DriverError(f"no visible widget {ident!r} on screen {self.app.screen.name!r}")

    # -- commands --------------------------------------------------------------------------------
    def cmd_state(self) -> dict[str, Any]:
        app, h = self.app, self.app.handset
        screen = app.screen
        out = {"screen": screen.name, "lang": app.lang, "paired": app.paired,
               "banner": app.root_widget.ids.banner.text,
               "banner_state": app.root_widget.ids.banner.state, "queued": h.queued,
               "online": h.online, "first_jobs_frame": app.first_jobs_frame,
               "jobs_drawn_at": app.jobs_drawn_at,
               "font": str(app.font) if app.font else None, "notices": list(h.notices),
               "notice": app.notice}
        if screen.name == "jobs":
            out["rows"] = [d["ticket_id"] for d in screen.ids.rv.data]
            out["rendered"] = sorted(int(v.ticket_id) for v in screen.ids.rv.layout_manager.children)
        if screen.name == "scan":
            out["verdict"] = screen.verdict
        if screen.name == "pairing":
            out["error"] = screen.error
        if screen.name in ("checklist",):
            out["message"] = screen.message
        if screen.name == "detail":
            out["actions"] = [w.ident for w in screen.ids.actions.children[::-1]]
            out["status"] = screen.status_text
        return out

    def cmd_tap(self, ident: str) -> str:
        w = self.find(ident)
        if w.disabled:
            raise DriverError(f"{ident!r} is disabled")
        w.trigger_action(duration=0)
        return self.app.screen.name

    def cmd_tap_job(self, ticket_id: int) -> str:
        screen = self.app.screen
        for view in screen.ids.rv.layout_manager.children:
            if int(view.ticket_id) == ticket_id:
                view.trigger_action(duration=0)
                return self.app.screen.name
        raise DriverError(f"job {ticket_id} is not on the list")

    def cmd_idents(self) -> list[str]:
        """The identified widgets now visible (what a tester could press)."""
        return [w.ident for root in self._roots() for w in root.walk(restrict=True)
                if getattr(w, "ident", "") and self._visible(w)]

    def cmd_outbox(self) -> list[str]:
        """The kinds waiting in the outbox, oldest first."""
        link = self.app.handset.link
        return [k for _, k, _ in link.outbox.pending()] if link else []

    def cmd_text(self, ident: str, value: str) -> None:
        self.find(ident).text = value

    def cmd_draw(self, ident: str, points: list[list[float]]) -> None:
        self.find(ident).draw([tuple(p) for p in points])

    def cmd_scroll(self, y: float) -> float:
        rv = self.app.screen.ids.rv
        rv.scroll_y = y
        return rv.scroll_y

    def cmd_texts(self) -> list[str]:
        out = []
        for root in self._roots():
            out += [w.text for w in root.walk(restrict=True)
                    if isinstance(w, Label) and w.text and self._visible(w)]
        return out

    def cmd_screenshot(self, path: str) -> threading.Event:
        """Taken two frames later, so the last change is drawn; renamed to exactly ``path``."""
        done = threading.Event()

        def shoot(dt) -> None:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            taken = Window.screenshot(name=str(target.with_suffix("")) + ".png")
            os.replace(taken, target)
            done.value = str(target)  # type: ignore[attr-defined]
            done.set()

        Clock.schedule_once(lambda dt: Clock.schedule_once(shoot, 0.05), 0)
        return done

    def cmd_bench_list(self, frames: int = 120, refreshes: int = 5) -> threading.Event:
        """The job list under load: time to rebuild it from the store, then scroll it from top to
        bottom one step per frame, timing the frames (the benchmark's measurement)."""
        import time

        screen = self.app.screen
        rv = screen.ids.rv
        t0 = time.perf_counter()
        for _ in range(refreshes):
            screen.refresh()
        refresh_ms = (time.perf_counter() - t0) * 1000 / refreshes
        done = threading.Event()
        idle: list[float] = []
        stamps: list[float] = []
        rv.scroll_y = 1

        def ms(values: list[float]) -> tuple[float, float]:
            gaps = sorted(b - a for a, b in itertools.pairwise(values))
            return (round(sum(gaps) / len(gaps) * 1000, 2),
                    round(gaps[max(0, int(len(gaps) * 0.95) - 1)] * 1000, 2))

        def still(dt) -> bool:
            # the floor: frames of the same screen with nothing changing (redraw cost only)
            idle.append(time.perf_counter())
            self.app.root_widget.canvas.ask_update()
            if len(idle) > frames // 2:
                Clock.schedule_interval(step, 0)
                return False
            return True

        def step(dt) -> bool:
            stamps.append(time.perf_counter())
            if len(stamps) > frames:
                mean, p95 = ms(stamps)
                idle_mean, _ = ms(idle)
                done.value = {  # type: ignore[attr-defined]
                    "rows": len(rv.data), "refresh_ms": round(refresh_ms, 2),
                    "frames": frames, "scrolled_to": round(rv.scroll_y, 3),
                    "frame_ms_mean": mean, "frame_ms_p95": p95,
                    "floor_idle_frame_ms_mean": idle_mean,
                    "scroll_vs_floor": round(idle_mean / mean, 3),
                    "row_widgets": len(rv.layout_manager.children)}
                done.set()
                return False
            rv.scroll_y = max(0.0, 1 - len(stamps) / frames)
            return True

        Clock.schedule_interval(still, 0)
        return done

    def cmd_lang(self, lang: str) -> str:
        """Switch the language in place (screenshots of one screen in both languages)."""
        self.app.handset.set_language(lang)
        self.app.on_change("language")
        return self.app.lang

    def cmd_gps(self, lon: float, lat: float) -> None:
        self.app.handset.platform.gps.place(lon, lat)

    def cmd_stop(self) -> None:
        Clock.schedule_once(lambda dt: self.app.stop(), 0.1)
