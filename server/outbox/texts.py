"""The citizen's mails in the booth's six languages: the invitation, the reminder, the move and
the cancellation. Placeholders: {org}, {advisor}, {day}, {time}, {minutes}, {link}, {code}.

Short and plain, as the pages are: what, when, with whom, how to join from home or at a booth,
and that nothing is recorded. The organisation's own name signs every mail.
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "MAIL_TEXTS"]

LANGUAGES = ("de", "en", "tr", "uk", "ru", "ar")

_JOIN = {
    "de": (
        "Von zu Hause: öffnen Sie {link} und folgen Sie den Schritten.\n"
        "An einer Videokabine in einer Filiale: wählen Sie „Termin“ und geben Sie den Code "
        "{code} ein.\nDas Gespräch wird nicht aufgezeichnet."
    ),
    "en": (
        "From home: open {link} and follow the steps.\n"
        "At a video booth in a branch: choose “Appointment” and enter the code {code}.\n"
        "The conversation is not recorded."
    ),
    "tr": (
        "Evden: {link} bağlantısını açın ve adımları izleyin.\n"
        "Bir şubedeki video kabininde: “Randevu”yu seçin ve {code} kodunu girin.\n"
        "Görüşme kaydedilmez."
    ),
    "uk": (
        "З дому: відкрийте {link} і виконайте кроки.\n"
        "У відеокабіні у відділенні: виберіть «Запис» і введіть код {code}.\n"
        "Розмова не записується."
    ),
    "ru": (
        "Из дома: откройте {link} и следуйте шагам.\n"
        "В видеокабине в отделении: выберите «Запись» и введите код {code}.\n"
        "Разговор не записывается."
    ),
    "ar": (
        "من المنزل: افتح {link} واتبع الخطوات.\n"
        "في كشك الفيديو في أحد الفروع: اختر «موعد» وأدخل الرمز {code}.\n"
        "لا يتم تسجيل المحادثة."
    ),
}

_WHEN = {
    "de": "Ihr Videotermin mit {advisor} am {day} um {time} ({minutes} Minuten).",
    "en": "Your video appointment with {advisor} on {day} at {time} ({minutes} minutes).",
    "tr": "{advisor} ile video randevunuz: {day}, saat {time} ({minutes} dakika).",
    "uk": "Ваш відеозапис до {advisor}: {day} о {time} ({minutes} хвилин).",
    "ru": "Ваша видеовстреча с {advisor}: {day} в {time} ({minutes} минут).",
    "ar": "موعد الفيديو الخاص بك مع {advisor} يوم {day} الساعة {time} ({minutes} دقيقة).",
}

#: (subject, first line) per mail and language; the invitation's body follows the first line.
_HEADS: dict[str, dict[str, tuple[str, str]]] = {
    "invitation": {
        "de": ("Ihr Videotermin bei {org}", "Guten Tag,"),
        "en": ("Your video appointment with {org}", "Hello,"),
        "tr": ("{org} ile video randevunuz", "Merhaba,"),
        "uk": ("Ваш відеозапис: {org}", "Добрий день,"),
        "ru": ("Ваша видеовстреча: {org}", "Здравствуйте,"),
        "ar": ("موعد الفيديو الخاص بك لدى {org}", "مرحبًا،"),
    },
    "reminder": {
        "de": ("Erinnerung: Ihr Videotermin bei {org}", "Wir erinnern Sie an Ihren Termin."),
        "en": ("Reminder: your video appointment with {org}", "A reminder of your appointment."),
        "tr": ("Hatırlatma: {org} ile video randevunuz", "Randevunuzu hatırlatırız."),
        "uk": ("Нагадування: ваш відеозапис ({org})", "Нагадуємо про ваш запис."),
        "ru": ("Напоминание: ваша видеовстреча ({org})", "Напоминаем о вашей встрече."),
        "ar": ("تذكير: موعد الفيديو الخاص بك لدى {org}", "نذكّرك بموعدك."),
    },
    "moved": {
        "de": ("Neue Zeit für Ihren Videotermin bei {org}", "Ihr Termin wurde verschoben."),
        "en": ("New time for your video appointment with {org}", "Your appointment has moved."),
        "tr": ("{org} ile video randevunuz için yeni saat", "Randevunuzun saati değişti."),
        "uk": ("Новий час вашого відеозапису ({org})", "Ваш запис перенесено."),
        "ru": ("Новое время вашей видеовстречи ({org})", "Ваша встреча перенесена."),
        "ar": ("موعد جديد لموعد الفيديو الخاص بك لدى {org}", "تم تغيير موعدك."),
    },
    "cancelled": {
        "de": ("Abgesagt: Ihr Videotermin bei {org}", "Ihr Termin wurde abgesagt."),
        "en": ("Cancelled: your video appointment with {org}", "Your appointment is cancelled."),
        "tr": ("İptal edildi: {org} ile video randevunuz", "Randevunuz iptal edildi."),
        "uk": ("Скасовано: ваш відеозапис ({org})", "Ваш запис скасовано."),
        "ru": ("Отменено: ваша видеовстреча ({org})", "Ваша встреча отменена."),
        "ar": ("أُلغي: موعد الفيديو الخاص بك لدى {org}", "تم إلغاء موعدك."),
    },
}

_CANCELLED_BODY = {
    "de": "Der Termin mit {advisor} am {day} um {time} findet nicht statt.",
    "en": "The appointment with {advisor} on {day} at {time} will not take place.",
    "tr": "{advisor} ile {day} saat {time} randevusu gerçekleşmeyecek.",
    "uk": "Запис до {advisor} {day} о {time} не відбудеться.",
    "ru": "Встреча с {advisor} {day} в {time} не состоится.",
    "ar": "لن يُعقد الموعد مع {advisor} يوم {day} الساعة {time}.",
}

_CALENDAR_TITLE = {
    "de": "Videotermin: {org}",
    "en": "Video appointment: {org}",
    "tr": "Video randevusu: {org}",
    "uk": "Відеозапис: {org}",
    "ru": "Видеовстреча: {org}",
    "ar": "موعد فيديو: {org}",
}


def _texts(language: str) -> dict[str, tuple[str, str, str]]:
    """(subject, body, calendar title) per mail."""
    texts = {}
    for kind, heads in _HEADS.items():
        subject, first = heads[language]
        if kind == "cancelled":
            body = f"{first}\n\n{_CANCELLED_BODY[language]}\n\n{{org}}"
        else:
            body = f"{first}\n\n{_WHEN[language]}\n\n{_JOIN[language]}\n\n{{org}}"
        texts[kind] = (subject, body, _CALENDAR_TITLE[language])
    return texts


MAIL_TEXTS = {language: _texts(language) for language in LANGUAGES}
