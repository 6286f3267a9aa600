"""What the offline engine says, per language and channel: the message catalogues.

Code picks a key and passes values; the words live here. An entry is one template, or a
{"sms": ..., "voice": ...} pair when the ear needs other words than the eye. Spanish is
complete (understanding and replies); other languages we can recognise get one short
line in their own language saying what the agent can do (FOREIGN).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.agent.understanding import ascii_words

Entry = str | Mapping[str, str]

EN: dict[str, Entry] = {
    "unknown_type": "Sorry, I can't book {thing}. I can book {types}. Which one?",
    "left_as_is": "OK, I've left {what} as it is.",
    "dropped": "OK, I've dropped that.",
    "nothing_in_progress": "OK, nothing else is in progress.",
    "still_booked": '{lead} {What} is still booked; to cancel it, say "cancel it".',
    "dropped_nothing_booked": "OK, I've dropped that. Nothing was booked.",
    "dropped_nothing_changed": "OK, I've dropped that. Nothing was changed.",
    "nothing_open": "OK, nothing is in progress.",
    "which_day": 'Sorry, I couldn\'t read the day in "{said}". Which day did you mean?',
    "which_time_pending": "{answer} Which time would you like? {offers}",
    "then_rest": '{reply} Then we\'ll do the rest: "{rest}".',
    "rest_first": 'One thing at a time: "{rest}" comes next. {reply}',
    "now_rest": '{reply} Now, "{rest}": {follow}',
    "thanks_name": "Thanks, {first}.",
    "thanks_name_ask": "Thanks, {first}. What can I do for you?",
    "no_hours": "No opening hours are set up yet.",
    "hours": "We're open {hours} ({zone} time).",
    "address": "We're at {address}.",
    "no_address": "Sorry, I don't have the address to give you here.",
    "no_prices": "Sorry, I don't have prices here. I can book {types}.",
    "services": "{described} I can book: {kinds}.",
    "no_answer": "Sorry, I don't have an answer to that here. {capabilities}",
    "capabilities": "I can book, move, list or cancel appointments, and tell you our hours.",
    "ask_name_again": "Sorry, what name should I put the booking under?",
    "which_type": "Sorry, which would you like: {types}?",
    "is_that_for": "Sure. Is that for {types}?",
    "which_appointment": "Which appointment do you mean: {listed}?",
    "when_instead": "What day and time would you like instead? {example}",
    "which_time": "Which time would you like? {offers}",
    "didnt_get_confirm": "Sorry, I didn't get that. {question}",
    "restate_confirm": "Let me say that again in full before I do anything. {question}",
    "which_time_short": "Sorry, which time? {offers}",
    "you_are_booked": "You already have {described}.",
    "instead_or_addition": "You already have {what}. Is this instead of it, or in addition to it?",
    "keeping": "Your appointment {on} stays as it is.",
    "instead_or_addition_again": (
        "Should I move {what} (instead), or keep it and book one more (in addition)?"
    ),
    "no_types": "Sorry, no appointment types are set up for booking on this line yet.",
    "passed": "{day} has already passed. Which day would you like?",
    "beyond_horizon": (
        "Sorry, {day} is beyond our booking horizon: we book up to {days} days ahead "
        "(until {last}). Which day would you like?"
    ),
    "after_time": "after {time}",
    "before_time": "before {time}",
    "range_span": "{first} to {last}",
    "nothing_free_range": "Sorry, nothing is free {bounds} ({span}).",
    "sorry_when_reason": "Sorry, {when} {reason}.",
    "nothing_free_day": "Sorry, nothing is free {what}.",
    "no_time_near": "I couldn't find a free time near then.",
    "another_day": "{prefix} {text} Another day?",
    "offers": {
        "sms": "Free {kind} times: {slots}. Which works?",
        "voice": "I have {kind} times at {slots}. Which would you like?",
    },
    "nothing_soon": "Nothing is free in the next two weeks.",
    "nothing_soon_part": "Nothing is free in the {part} in the next two weeks.",
    "is_taken": "is taken",
    "off_step": "is not a start time (appointments start every {step} minutes)",
    "not_available": "isn't available",
    "outside_hours": "is outside opening hours ({hours})",
    "too_soon": "is too soon",
    "already_passed": "has already passed",
    "too_far": "is too far ahead to book",
    "closed_on": "closed on {weekdays}",
    "open_on": "{weekdays} {spans}",
    "span": "{opens}-{closes}",
    "nothing_later": "Nothing later is free soon.",
    "nothing_earlier": "Sorry, nothing earlier is free. {question}",
    "kept": "OK, nothing cancelled. You still have {kept}.",
    "ok": "OK.",
    "suit_better": "OK. What day and time would suit you better? {example}",
    "is_free": "{when} is free.",
    "great": "Great.",
    "ask_name": "{prefix} {lead} What name should I put the booking under?",
    "confirm_cancel_all": {
        "sms": "Cancel all {count}: {listed}? Reply YES to confirm.",
        "voice": (
            "You have {count} appointments: {listed}. Shall I cancel all {count}? "
            "Say yes to confirm."
        ),
    },
    "confirm_cancel": {
        "sms": "Cancel {what}? Reply YES to confirm.",
        "voice": "Do you want me to cancel {what}?",
    },
    "confirm_move": {
        "sms": "Move your {kind} from {old} to {new}? Reply YES to confirm.",
        "voice": "I can move your {kind} from {old} to {new}. Shall I go ahead?",
    },
    "confirm_book": {
        "sms": "Book {kind} on {when}? Reply YES to confirm.",
        "voice": "I can book {kind} at {when}. Shall I go ahead?",
    },
    "booked": {
        "sms": "Booked: {kind} on {when}. See you then!",
        "voice": "You're booked for {a_kind} at {when}.",
    },
    "just_taken": "Sorry, {when} was just taken.",
    "not_found": "Sorry, I couldn't find that appointment among yours.",
    "failed": "Sorry, that didn't work: {reason}",
    "claim_withheld": (
        "Sorry, I couldn't finish that. Ask me for your appointments to check them."
    ),
    "no_upcoming": "You have no upcoming appointments.",
    "which_one": "Which one do you mean: {listed}?",
    "none_on_day": "I don't see an appointment on {day}. Which one do you mean: {listed}?",
    "move_when": "Sure. When would you like to move {what} to?",
    "moved": {
        "sms": "Done: your {kind} is now {when}.",
        "voice": "Done. Your {kind} is now at {when}.",
    },
    "cancelled": "Cancelled {what}.",
    "could_not_cancel": "I could not cancel {what}; it is still booked.",
    "you_have_one": "You have {described}.",
    "you_have_many": {
        "sms": "You have {count}: {listed}.",
        "voice": "You have {count} appointments: {listed}.",
    },
    "yes_booked": "Yes, you have {described}.",
    "not_seen": "I don't see an appointment {asked}. You have {described}.",
    "asked_day": "on {day}",
    "asked_days": "from {day} to {until}",
    "asked_time": "at {time}",
    "asked_part": "in the {part}",
    "your_kind": "your {kind} {on}",
    "a_kind_on": "{a_kind} {on}",
    "on_moment": {"sms": "on {when}", "voice": "at {when}"},
    "verify": {
        "sms": "For your security I need to verify it's you (your PIN) before I can do that.",
        "voice": "Before I can do that, I need to verify it's you with your PIN.",
    },
    "goodbye": {"sms": "Thanks, bye!", "voice": "Thanks for calling. Goodbye!"},
    "anything_else": {"sms": "{text}", "voice": "{text} Is there anything else I can help with?"},
    "example_time": "Friday at 10",
    "example_request": "book {a_kind} tomorrow at 3",
    "example": {"sms": "E.g. '{phrase}'.", "voice": "For example, say: {phrase}."},
    "hi": "Hi!",
    "didnt_get": "Sorry, I didn't get that.",
    "hint": (
        "{lead} I can book, move, list or cancel appointments. {example} What would you like to do?"
    ),
    "and": "and",
    "or": "or",
    "minutes": "min",
    "wont_book": "OK, I won't book it.",
    "closed_day": "We're closed on {weekdays}, so {day} is closed.",
    "open_day": "On {day} we're open: {hours}.",
    "closed_then": "Sorry, we're closed {what}.",
}

ES: dict[str, Entry] = {
    "unknown_type": "Lo siento, no puedo reservar {thing}. Puedo reservar {types}. ¿Cuál?",
    "left_as_is": "De acuerdo, dejo {what} como está.",
    "dropped": "De acuerdo, lo dejo.",
    "nothing_in_progress": "De acuerdo, no hay nada más en curso.",
    "still_booked": '{lead} {What} sigue reservada; para cancelarla, diga "cancelar".',
    "dropped_nothing_booked": "De acuerdo, lo dejo. No se reservó nada.",
    "dropped_nothing_changed": "De acuerdo, lo dejo. No se cambió nada.",
    "nothing_open": "De acuerdo, no hay nada en curso.",
    "which_day": 'Lo siento, no entendí el día en "{said}". ¿Qué día quería decir?',
    "which_time_pending": "{answer} ¿Qué hora prefiere? {offers}",
    "then_rest": '{reply} Después haremos lo demás: "{rest}".',
    "rest_first": 'Vamos por partes: después haremos "{rest}". {reply}',
    "now_rest": '{reply} Ahora, "{rest}": {follow}',
    "thanks_name": "Gracias, {first}.",
    "thanks_name_ask": "Gracias, {first}. ¿En qué le puedo ayudar?",
    "no_hours": "Todavía no hay horario configurado.",
    "hours": "Abrimos {hours} (hora de {zone}).",
    "address": "Estamos en {address}.",
    "no_address": "Lo siento, no tengo la dirección aquí.",
    "no_prices": "Lo siento, no tengo los precios aquí. Puedo reservar {types}.",
    "services": "{described} Puedo reservar: {kinds}.",
    "no_answer": "Lo siento, no tengo respuesta para eso aquí. {capabilities}",
    "capabilities": "Puedo reservar, cambiar, consultar o cancelar citas, y decirle el horario.",
    "ask_name_again": "Perdone, ¿a qué nombre pongo la reserva?",
    "which_type": "Perdone, ¿cuál prefiere: {types}?",
    "is_that_for": "Claro. ¿Es para {types}?",
    "which_appointment": "¿Qué cita quiere decir: {listed}?",
    "when_instead": "¿Qué día y hora prefiere? {example}",
    "which_time": "¿Qué hora prefiere? {offers}",
    "didnt_get_confirm": "Perdone, no le entendí. {question}",
    "restate_confirm": "Se lo repito completo antes de hacer nada. {question}",
    "which_time_short": "Perdone, ¿qué hora? {offers}",
    "you_are_booked": "Ya tiene {described}.",
    "instead_or_addition": "Ya tiene {what}. ¿Es en lugar de esa cita o además de ella?",
    "keeping": "Su cita {on} se queda como está.",
    "instead_or_addition_again": (
        "¿Cambio {what} (en lugar de) o la mantengo y reservo otra (además)?"
    ),
    "no_types": "Lo siento, aún no hay tipos de cita configurados en esta línea.",
    "passed": "El {day} ya pasó. ¿Qué día prefiere?",
    "beyond_horizon": (
        "Lo siento, el {day} está fuera del plazo de reservas: reservamos con hasta {days} "
        "días de antelación (hasta el {last}). ¿Qué día prefiere?"
    ),
    "after_time": "después de las {time}",
    "before_time": "antes de las {time}",
    "range_span": "{first} a {last}",
    "nothing_free_range": "Lo siento, no hay nada libre {bounds} ({span}).",
    "sorry_when_reason": "Lo siento, {when} {reason}.",
    "nothing_free_day": "Lo siento, no hay nada libre el {what}.",
    "no_time_near": "No encontré una hora libre cerca de esa.",
    "another_day": "{prefix} {text} ¿Otro día?",
    "offers": {
        "sms": "Horas libres para {kind}: {slots}. ¿Cuál le va bien?",
        "voice": "Tengo horas para {kind} {slots}. ¿Cuál prefiere?",
    },
    "nothing_soon": "No hay nada libre en las próximas dos semanas.",
    "nothing_soon_part": "No hay nada libre por la {part} en las próximas dos semanas.",
    "is_taken": "está ocupado",
    "off_step": "no es una hora de inicio (las citas empiezan cada {step} minutos)",
    "not_available": "no está disponible",
    "outside_hours": "está fuera del horario ({hours})",
    "too_soon": "es demasiado pronto",
    "already_passed": "ya pasó",
    "too_far": "es demasiado lejos para reservar",
    "closed_on": "cerrado los {weekdays}",
    "open_on": "los {weekdays} {spans}",
    "span": "de {opens} a {closes}",
    "nothing_later": "No hay nada libre más tarde próximamente.",
    "nothing_earlier": "Lo siento, no hay nada libre antes. {question}",
    "kept": "De acuerdo, no cancelé nada. Sigue teniendo {kept}.",
    "ok": "De acuerdo.",
    "suit_better": "De acuerdo. ¿Qué día y hora le vendrían mejor? {example}",
    "is_free": "El {when} está libre.",
    "great": "Perfecto.",
    "ask_name": "{prefix} {lead} ¿A qué nombre pongo la reserva?",
    "confirm_cancel_all": {
        "sms": "¿Cancelo las {count}: {listed}? Responda SÍ para confirmar.",
        "voice": "Tiene {count} citas: {listed}. ¿Cancelo las {count}? Diga sí para confirmar.",
    },
    "confirm_cancel": {
        "sms": "¿Cancelo {what}? Responda SÍ para confirmar.",
        "voice": "¿Desea que cancele {what}?",
    },
    "confirm_move": {
        "sms": "¿Cambio su cita de {kind} del {old} al {new}? Responda SÍ para confirmar.",
        "voice": "Puedo cambiar su cita de {kind} del {old} al {new}. ¿Procedo?",
    },
    "confirm_book": {
        "sms": "¿Reservo {kind} el {when}? Responda SÍ para confirmar.",
        "voice": "Puedo reservarle {kind} el {when}. ¿Procedo?",
    },
    "booked": {
        "sms": "Listo: su cita de {kind} queda reservada el {when}. ¡Hasta entonces!",
        "voice": "Queda reservada {a_kind} el {when}.",
    },
    "just_taken": "Lo siento, el {when} se acaba de ocupar.",
    "not_found": "Lo siento, no encontré esa cita entre las suyas.",
    "failed": "Lo siento, no se pudo: {reason}",
    "claim_withheld": ("Lo siento, no pude terminar eso. Pídame sus citas para revisarlas."),
    "no_upcoming": "No tiene citas próximas.",
    "which_one": "¿Cuál quiere decir: {listed}?",
    "none_on_day": "No veo ninguna cita el {day}. ¿Cuál quiere decir: {listed}?",
    "move_when": "Claro. ¿A cuándo quiere cambiar {what}?",
    "moved": {
        "sms": "Hecho: su cita de {kind} queda cambiada al {when}.",
        "voice": "Hecho. Su cita de {kind} queda cambiada al {when}.",
    },
    "cancelled": "He cancelado {what}.",
    "could_not_cancel": "No pude cancelar {what}; sigue reservada.",
    "you_have_one": "Tiene {described}.",
    "you_have_many": {"sms": "Tiene {count}: {listed}.", "voice": "Tiene {count} citas: {listed}."},
    "yes_booked": "Sí, tiene {described}.",
    "not_seen": "No veo ninguna cita {asked}. Tiene {described}.",
    "asked_day": "el {day}",
    "asked_days": "del {day} al {until}",
    "asked_time": "a las {time}",
    "asked_part": "por la {part}",
    "your_kind": "su cita de {kind} {on}",
    "a_kind_on": "{a_kind} {on}",
    "on_moment": {"sms": "el {when}", "voice": "el {when}"},
    "verify": {
        "sms": "Por seguridad necesito verificar que es usted (su PIN) antes de hacerlo.",
        "voice": "Antes de hacerlo, necesito verificar que es usted con su PIN.",
    },
    "goodbye": {"sms": "¡Gracias, adiós!", "voice": "Gracias por llamar. ¡Adiós!"},
    "anything_else": {"sms": "{text}", "voice": "{text} ¿Le puedo ayudar en algo más?"},
    "example_time": "el viernes a las 10",
    "example_request": "reservar {a_kind} mañana a las 3",
    "example": {"sms": "Ej.: '{phrase}'.", "voice": "Por ejemplo, diga: {phrase}."},
    "hi": "¡Hola!",
    "didnt_get": "Perdone, no le entendí.",
    "hint": (
        "{lead} Puedo reservar, cambiar, consultar o cancelar citas. {example} ¿Qué desea hacer?"
    ),
    "and": "y",
    "or": "o",
    "minutes": "min",
    "wont_book": "De acuerdo, no la reservo.",
    "closed_day": "Cerramos los {weekdays}, así que el {day} está cerrado.",
    "open_day": "El {day} abrimos: {hours}.",
    "closed_then": "Lo siento, cerramos el {what}.",
}

CATALOGUES: dict[str, dict[str, Entry]] = {"en": EN, "es": ES}

# Languages we recognise but do not converse in: one line saying what the agent can do.
FOREIGN = {
    "fr": "Désolé, je ne parle que l'anglais et l'espagnol. Je peux réserver, déplacer, "
    "lister ou annuler des rendez-vous.",
    "de": "Entschuldigung, ich spreche nur Englisch und Spanisch. Ich kann Termine buchen, "
    "verschieben, auflisten oder absagen.",
    "it": "Mi dispiace, parlo solo inglese e spagnolo. Posso prenotare, spostare, elencare "
    "o annullare appuntamenti.",
    "pt": "Desculpe, só falo inglês e espanhol. Posso marcar, remarcar, listar ou cancelar "
    "consultas.",
}
# Words frequent in one language and rare in the others: enough to tell a short text.
MARKERS = {
    "es": r"\b(?:hola|quiero|quisiera|cita|citas|manana|gracias|por favor|puedo|tengo|"
    r"necesito|cancelar|reservar|cambiar|hora|dia|semana|lunes|martes|miercoles|jueves|"
    r"viernes|sabado|domingo|tarde|buenos|buenas|usted|para|una|el|la|que|si|mi|hay)\b",
    "fr": r"\b(?:bonjour|rendez-vous|rendez vous|je|voudrais|demain|merci|pour|avec|"
    r"annuler|est-ce|vous|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\b",
    "de": r"\b(?:hallo|guten|termin|ich|mochte|morgen|danke|bitte|absagen|verschieben|"
    r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|einen)\b",
    "it": r"\b(?:ciao|buongiorno|appuntamento|vorrei|domani|grazie|prenotare|annullare|"
    r"lunedi|martedi|mercoledi|giovedi|venerdi|sabato|domenica)\b",
    "pt": r"\b(?:ola|obrigado|obrigada|gostaria|marcar|amanha|consulta|queria|voce|"
    r"segunda-feira|terca-feira|quarta-feira|quinta-feira|sexta-feira)\b",
}
# Compiled once: re.findall with a pattern's text looks it up in re's cache each call.
MARKER_RULES = tuple((language, re.compile(pattern)) for language, pattern in MARKERS.items())
ENGLISH = re.compile(
    r"\b(?:i|you|my|the|book|appointment|cancel|tomorrow|can|what|when|please|thanks|"
    r"need|want|have|is|at|on|for|and|me|it|yes|no)\b"
)
# The first word of each marker. A marker is literal words between \b's, so a match's
# first word is a whole word of the text: a text holding none of these holds no marker.
MARKER_FIRST_WORDS = frozenset(
    re.match(r"\w+", marker).group()  # type: ignore[union-attr]
    for pattern in MARKERS.values()
    for marker in pattern.removeprefix(r"\b(?:").removesuffix(r")\b").split("|")
)


def detect_language(folded: str) -> str | None:
    """The language a short (accent-folded, lower-case) text is in, or None when it is
    not clearly any: two marker words at least, and more than the English ones."""
    words = ascii_words(folded)
    if words is not None and MARKER_FIRST_WORDS.isdisjoint(words):
        return None  # no marker of any language (most English messages): no scans
    english = len(ENGLISH.findall(folded))
    best, best_count = None, 0
    for language, pattern in MARKER_RULES:
        count = len(pattern.findall(folded))
        if count > best_count:
            best, best_count = language, count
    if best is None or best_count < 2 or best_count <= english:
        return None
    return best


def wording(language: str, channel: str, key: str, **values: object) -> str:
    catalogue = CATALOGUES.get(language, EN)
    entry = catalogue.get(key) or EN[key]
    template = entry if isinstance(entry, str) else entry["voice" if channel == "voice" else "sms"]
    return " ".join(template.format(**values).split())
