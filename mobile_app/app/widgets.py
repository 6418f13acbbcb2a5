"""Shared widgets: big high-contrast buttons and labels, the offline banner, the signature pad.
Styled in theme.kv; logic stays in the view-models."""

from __future__ import annotations

import json
from pathlib import Path

from kivy.graphics import Color, Line
from kivy.properties import BooleanProperty, ListProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.textinput import TextInput
from kivy.uix.togglebutton import ToggleButton
from kivy.uix.widget import Widget


class BigButton(Button):
    """At least 72 dp high: usable with gloves. ``ident`` names it for the test driver."""

    ident = StringProperty("")
    primary = BooleanProperty(False)
    danger = BooleanProperty(False)


class ChoiceButton(ToggleButton):
    ident = StringProperty("")


class Body(Label):
    pass


class Caption(Label):
    pass


class Title(Label):
    pass


class Field(TextInput):
    ident = StringProperty("")


class Banner(Label):
    state = StringProperty("offline")  # offline | sending | online
    bg = ListProperty([0.8, 0, 0, 1])


class Notice(ButtonBehavior, Label):
    """A server refusal or a withdrawn job, shown under the banner until tapped or replaced."""

    def on_release(self) -> None:
        from kivy.app import App

        App.get_running_app().notice = ""


class NavBar(BoxLayout):
    pass


class SignaturePad(Widget):
    """Strokes drawn with a finger, kept relative to the pad (so they survive a re-layout or a
    language switch); saved as a PNG, with the strokes as JSON beside it."""

    ident = StringProperty("")
    strokes = ListProperty()

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.bind(pos=self._redraw, size=self._redraw, strokes=self._redraw)

    def _redraw(self, *_args) -> None:
        self.canvas.clear()
        with self.canvas:
            Color(0, 0, 0.4, 1)
            for stroke in self.strokes:
                pts = [c for x, y in stroke for c in (self.x + x, self.y + y)]
                if len(pts) >= 4:
                    Line(points=pts, width=2.5)

    def on_touch_down(self, touch):
        if not self.collide_point(*touch.pos):
            return super().on_touch_down(touch)
        touch.grab(self)
        self.strokes.append([(touch.x - self.x, touch.y - self.y)])
        return True

    def on_touch_move(self, touch):
        if touch.grab_current is not self:
            return super().on_touch_move(touch)
        self.strokes[-1].append((touch.x - self.x, touch.y - self.y))
        self._redraw()
        return True

    def on_touch_up(self, touch):
        if touch.grab_current is self:
            touch.ungrab(self)
            return True
        return super().on_touch_up(touch)

    def draw(self, points: list[tuple[float, float]]) -> None:
        """Add a stroke from pad-relative points (the test driver's 'finger')."""
        self.strokes.append(list(points))

    def clear(self) -> None:
        self.strokes = []

    @property
    def signed(self) -> bool:
        return sum(len(s) for s in self.strokes) >= 5

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.export_to_png(str(path))
        path.with_suffix(".json").write_text(json.dumps(
            {"size": [self.width, self.height], "strokes": self.strokes}))
        return path
