"""`crewline tags`: enrol a tag from a connected PC/SC reader, list the registry."""

from __future__ import annotations

import json

import typer

from server.core.cli import err, settings_or_exit

tags_app = typer.Typer(help="Site tags: enrol from a PC/SC reader, list.", no_args_is_help=True)




@tags_app.command("enroll")
def enroll(site: int = typer.Option(..., "--site", help="site id the tag is fixed at"),
           by: str = typer.Option(..., "--by", help="username of the manager or admin enrolling"),
           reader: str | None = typer.Option(None, help="PC/SC reader name or prefix "
                                                         "(default: the first reader)"),
           timeout: float = typer.Option(30.0, min=0.1, help="seconds to wait for a tag"),
           sun: bool | None = typer.Option(None, "--sun/--no-sun",
                                           help="SUN on/off (default: on for NTAG 424 DNA)"),
           base_url: str = typer.Option("https://tags.crewline.example/t",
                                        help="URL the tag shows (SUN personalisation plan)"),
           note: str | None = typer.Option(None, help="free text, e.g. where on the site"),
           as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Read one tag from a PC/SC reader and enrol it to SITE.

    For an NTAG 424 DNA not yet personalised with this deployment's keys, prints the keys and
    SDM settings to apply (it does not write them).
    """
    from sqlalchemy import select

    from rfid import PcscReader, RfidError, SunAuthenticationError, TagType, verify_sun_with_keyring
    from server.auth.service import Principal
    from server.core.db import make_engine, make_sessionmaker, transaction
    from server.core.errors import CrewlineError
    from server.models import Role, Site, User
    from server.tags import service
    from server.tags.keys import keyring_from_settings
    from server.tags.personalise import render_plan, sdm_plan
    from server.tags.schemas import TagEnrollIn

    settings = settings_or_exit()
    keyring = keyring_from_settings(settings)
    engine = make_engine(settings, pool_size=1)
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session:  # check before anyone holds a tag to the reader
            user = session.scalars(select(User).where(User.username == by)).first()
            if user is None or not user.is_active or user.role not in (Role.manager, Role.admin):
                err.print(f"[red]--by: {by!r} is not an active manager or admin[/red]")
                raise typer.Exit(2)
            if session.get(Site, site) is None:
                err.print(f"[red]--site: site {site} does not exist[/red]")
                raise typer.Exit(2)
            actor = Principal(user.id, user.username, Role(user.role))

        pcsc = PcscReader(reader)
        err.print(f"hold the tag to {pcsc.name} …")
        try:
            reading = pcsc.read(timeout)
        except RfidError as exc:
            err.print(f"[red]{exc.code}: {exc}[/red]")
            raise typer.Exit(1) from None
        finally:
            pcsc.close()

        capable = reading.tag_type is TagType.TYPE4 and len(reading.uid) == 14
        use_sun = capable if sun is None else sun
        if use_sun and not capable:
            err.print(f"[red]--sun: tag {reading.uid} ({reading.tag_type.value}) is not an "
                      "NTAG 424 DNA; enrol it with --no-sun[/red]")
            raise typer.Exit(2)
        personalised, counter, version, why = False, None, None, None
        if use_sun:
            if reading.sun_error:
                why = f"its SUN parameters are unusable: {reading.sun_error}"
            elif reading.sun is None:
                why = "it shows no SUN message (not personalised yet)"
            else:
                try:
                    verified = verify_sun_with_keyring(reading.sun, keyring)
                except SunAuthenticationError:
                    why = "its SUN message does not verify with this deployment's keys"
                else:
                    if verified.uid_hex != reading.uid:
                        why = "its SUN message names another UID"
                    else:
                        personalised = True
                        counter, version = verified.counter, verified.key_version
        body = TagEnrollIn(uid=reading.uid, tag_type=reading.tag_type.value,
                           sun_enabled=use_sun, key_version=version, site_id=site, note=note)
        try:
            with transaction(sessions) as session:
                # the enrolment read's counter is used up: replaying that URL is a replay
                tag = service.enroll_tag(session, body, actor, reading.read_at, keyring,
                                         last_counter=counter)
        except CrewlineError as exc:
            err.print(f"[red]{exc.field or 'tag'}: {exc.message}[/red]")
            raise typer.Exit(1) from None
    finally:
        engine.dispose()

    plan = sdm_plan(keyring, tag.uid, base_url, tag.key_version) if use_sun and not personalised \
        else None
    summary = {"tag_id": tag.id, "uid": tag.uid, "tag_type": tag.tag_type.value,
               "sun_enabled": tag.sun_enabled, "key_version": tag.key_version,
               "site_id": tag.site_id, "reader": reading.reader,
               "personalised": personalised if use_sun else None,
               "last_counter": tag.last_counter}
    if as_json:
        typer.echo(json.dumps({**summary, "sdm_plan": plan.to_dict() if plan else None}))
        return
    kind = "SUN" if use_sun else "plain (UID only: scans prove nothing beyond the UID)"
    typer.echo(f"enrolled tag {tag.id}: {tag.uid} ({tag.tag_type.value}, {kind}) at site "
               f"{tag.site_id}")
    if use_sun and personalised:
        typer.echo(f"personalised with key version {tag.key_version}; read counter {counter}")
    elif plan is not None:
        typer.echo(f"not personalised: {why}; scans will be bad_mac until it is.")
        typer.echo(render_plan(plan))


@tags_app.command("list")
def list_tags(site: int | None = typer.Option(None, "--site", help="only this site"),
              status: str | None = typer.Option(None, help="active or revoked"),
              limit: int = typer.Option(500, min=1, max=10_000),
              as_json: bool = typer.Option(False, "--json", help="one JSON object per line")
              ) -> None:
    """List enrolled tags, newest first."""
    from server.core.db import make_engine, make_sessionmaker
    from server.tags import service

    if status not in (None, "active", "revoked"):
        err.print("[red]--status: active or revoked[/red]")
        raise typer.Exit(2)
    engine = make_engine(settings_or_exit(), pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            tags = service.list_tags(session, site_id=site, status=status, limit=limit)
    finally:
        engine.dispose()
    for tag in tags:
        if as_json:
            typer.echo(tag.model_dump_json())
        else:
            sun = f"SUN v{tag.key_version} ctr {tag.last_counter}" if tag.sun_enabled else "plain"
            typer.echo(f"{tag.id:>6}  {tag.uid:<20}  {tag.tag_type.value:<14}  {sun:<18}  "
                       f"site {tag.site_id:<6}  {tag.status}")
    if not tags and not as_json:
        err.print("no tags")
