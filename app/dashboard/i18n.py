"""English and Spanish words for the dashboard. The language is the browser's choice
(the `lang` cookie set by the switcher, else Accept-Language), defaulting to English."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("en", "es")

ES: dict[str, str] = {
    "Dashboard": "Panel",
    "Agenda": "Agenda",
    "Conversations": "Conversaciones",
    "Settings": "Ajustes",
    "Calendar": "Calendario",
    "Phone numbers": "Teléfonos",
    "Insights": "Estadísticas",
    "Sign out": "Cerrar sesión",
    "Sign in": "Iniciar sesión",
    "Skip to content": "Ir al contenido",
    "Your phone number": "Tu número de teléfono",
    "Text me a sign-in link": "Envíame un enlace",
    "If this number belongs to an owner, we texted it a link and a code.": (
        "Si este número es de un propietario, le enviamos un enlace y un código."
    ),
    "6-digit code": "Código de 6 dígitos",
    "Sign in with the code": "Entrar con el código",
    "That code is not valid or has expired.": "Ese código no es válido o ha caducado.",
    "This sign-in link is not valid, was used already or has expired.": (
        "Este enlace no es válido, ya se usó o ha caducado."
    ),
    "Too many sign-in requests. Try again later.": "Demasiadas solicitudes. Inténtalo más tarde.",
    "Enter a phone number we can read, e.g. +1 415 555 0123.": (
        "Escribe un número válido, p. ej. +1 415 555 0123."
    ),
    "Continue to your dashboard": "Continuar al panel",
    "Upcoming appointments": "Próximas citas",
    "No upcoming appointments.": "No hay citas próximas.",
    "Cancel": "Cancelar",
    "Weeks": "Semanas",
    "Earlier": "Antes",
    "Later": "Después",
    "Cancel or move": "Cancelar o mover",
    "Cancel this appointment": "Cancelar esta cita",
    "This appointment is cancelled.": "Esta cita está cancelada.",
    "Move to": "Mover a",
    "Move": "Mover",
    "New time": "Nueva hora",
    "Save": "Guardar",
    "Saved.": "Guardado.",
    "Please fix the fields marked below.": "Corrige los campos marcados.",
    "Opening hours": "Horario",
    "Closed": "Cerrado",
    "e.g. 09:00-12:00, 13:00-17:00; empty when closed": (
        "p. ej. 09:00-12:00, 13:00-17:00; vacío si está cerrado"
    ),
    "Appointment types": "Tipos de cita",
    "Name": "Nombre",
    "Minutes": "Minutos",
    "Buffer before": "Margen antes",
    "Buffer after": "Margen después",
    "Rules": "Reglas",
    "Minimum notice (minutes)": "Aviso mínimo (minutos)",
    "Booking horizon (days)": "Horizonte (días)",
    "Daily cap (empty: none)": "Máximo diario (vacío: sin límite)",
    "New PIN (4-8 digits, empty: unchanged)": "PIN nuevo (4-8 dígitos, vacío: sin cambio)",
    "Language": "Idioma",
    "Persona": "Personalidad",
    "Greeting": "Saludo",
    "Instructions": "Instrucciones",
    "Address": "Dirección",
    "Services": "Servicios",
    "Questions and answers": "Preguntas y respuestas",
    "Question": "Pregunta",
    "Answer": "Respuesta",
    "Reminders": "Recordatorios",
    "Send reminders": "Enviar recordatorios",
    "Ask people to confirm": "Pedir confirmación",
    "Remind by phone call": "Recordar con una llamada",
    "Text me about bookings and changes": "Avisarme por SMS de citas y cambios",
    "Remind this many minutes before (comma-separated)": (
        "Recordar estos minutos antes (separados por comas)"
    ),
    "Quiet hours start (HH:MM)": "Inicio de horas de silencio (HH:MM)",
    "Quiet hours end (HH:MM)": "Fin de horas de silencio (HH:MM)",
    "Daily agenda text at (HH:MM, empty: none)": (
        "Agenda diaria por SMS a las (HH:MM, vacío: ninguna)"
    ),
    "Save reminders": "Guardar recordatorios",
    "No conversations yet.": "Aún no hay conversaciones.",
    "Summary": "Resumen",
    "Transcript": "Transcripción",
    "Recording": "Grabación",
    "Live: new messages appear here.": "En vivo: los mensajes nuevos aparecen aquí.",
    "Status": "Estado",
    "Last change": "Último cambio",
    "Bookings waiting to sync": "Citas pendientes de sincronizar",
    "Connect Google Calendar": "Conectar Google Calendar",
    "Reconnect Google Calendar": "Reconectar Google Calendar",
    "Disconnect": "Desconectar",
    "Connect Microsoft 365 calendar": "Conectar calendario de Microsoft 365",
    "Reconnect Microsoft 365 calendar": "Reconectar calendario de Microsoft 365",
    "Built-in calendar (no Google Calendar connected)": (
        "Calendario integrado (sin Google Calendar)"
    ),
    "Add a number": "Añadir un número",
    "Text a code": "Enviar código",
    "Verify": "Verificar",
    "Verified": "Verificado",
    "Waiting for the code": "Esperando el código",
    "Bookings per day (last 30 days)": "Citas por día (últimos 30 días)",
    "No-shows": "Ausencias",
    "No attendance marked in the last 30 days.": "No se marcó asistencia en los últimos 30 días.",
    "Attended": "Asistieron",
    "No-show rate": "Tasa de ausencias",
    "Total": "Total",
    "Agent": "Agente",
    "Español": "Español",
    "English": "English",
    "Not found": "No encontrado",
}


def pick(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    first = (accept_language or "").split(",")[0].strip().lower()
    return "es" if first.startswith("es") else "en"


def translator(language: str) -> Callable[[str], str]:
    if language == "es":
        return lambda text: ES.get(text, text)
    return lambda text: text
