"""The Kivy handset app (the only package of mobile_app that imports Kivy)."""
