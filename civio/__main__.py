from civio.cli import app

app()
