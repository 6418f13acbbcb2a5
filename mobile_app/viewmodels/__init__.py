"""View-models and the Handset presenter: the handset app's logic, importing no Kivy."""
