"""`python -m app voice …`: try streamed calls locally."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from app.voice.fake_deepgram import FAKE_KEY, FakeDeepgram

voice_cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Streamed calls")


@voice_cli.command("fake-deepgram")
def fake_deepgram(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 18710,
    bytes_per_char: Annotated[
        int, typer.Option(help="Synthesised audio per character (8000 = 1 s)")
    ] = 480,
) -> None:
    """Serve a local fake of Deepgram (live transcription and Aura speech) for
    `python -m app call --stream`; prints the settings that point the server at it."""
    typer.echo("Start the server with these settings (and an agent in voice_mode 'stream'):")
    typer.echo(f"  DEEPGRAM_API_KEY={FAKE_KEY}")
    typer.echo(f"  DEEPGRAM_API_URL=http://127.0.0.1:{port}")
    typer.echo(f"  DEEPGRAM_WS_URL=ws://127.0.0.1:{port}")
    fake = FakeDeepgram(bytes_per_char=bytes_per_char)
    uvicorn.run(
        fake.app(), host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
    )
