"""The concierge's languages (SPEC §5.2): held-out phrasings of our own in English, Spanish, Portuguese and French
understood with their language, answers written in the user's locale or else the question's language, with dates,
numbers and money formatted for it by Babel — and every sentence present in every language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from babel.dates import format_skeleton
from babel.numbers import format_currency

from concierge.intents import understand
from concierge.locales import LANGUAGES
from concierge.phrasebook import AMENITY_NAMES, FORMS, STATUSES, TEXTS
from tests.api.test_concierge_answers import ANA_NEXT, PIA_TRIP, ask, seed

# Phrasings written the way travelers write, kept apart from the phrase tables in concierge/lexicon.py.
HELD_OUT: dict[str, list[tuple[str, str]]] = {
 "es": [
  ("¿A qué hora puedo hacer el check-in?", "check_in"),
  ("¿cuándo llegamos al apartamento?", "check_in"),
  ("¿a qué hora tenemos que dejar el piso?", "check_out"),
  ("hora de salida por favor", "check_out"),
  ("¿cuál es la dirección exacta?", "address"),
  ("¿dónde está el alojamiento?", "address"),
  ("¿para cuántas personas es mi reserva?", "guests"),
  ("¿cuánto pagué en total?", "price"),
  ("¿cuántas noches son?", "nights"),
  ("¿hay wifi en el piso?", "amenity"),
  ("¿se puede aparcar cerca?", "amenity"),
  ("¿puedo llevar a mi perro?", "pets"),
  ("¿se puede fumar en la terraza?", "smoking"),
  ("¿cuántos dormitorios tiene?", "bedrooms"),
  ("¿cuáles son las normas de la casa?", "house_rules"),
  ("¿cuál es la política de cancelación?", "cancellation_policy"),
  ("¿cómo entro al edificio? ¿hay caja de llaves?", "check_in_info"),
  ("¿me han aprobado la solicitud?", "requests"),
  ("¿cuándo caduca la oferta?", "offers"),
  ("muéstrame todas mis reservas", "trips_list"),
  ("quiero hablar con una persona", "human"),
  ("quiero cancelar el viaje", "cancellation"),
  ("¿podemos cambiar las fechas?", "change"),
  ("quiero que me devuelvan el dinero", "refund"),
  ("¿cómo hago el pago?", "payment"),
  ("¡hay un incendio en la cocina!", "urgent"),
  ("se ha ido la luz y no hay agua", "urgent"),
  ("muchas gracias", "thanks"),
  ("hola buenas", "greeting"),
 ],
 "pt": [
  ("A que horas posso fazer o check-in?", "check_in"),
  ("quando é a chegada?", "check_in"),
  ("a que horas temos de sair do apartamento?", "check_out"),
  ("qual é a morada?", "address"),
  ("onde fica o alojamento?", "address"),
  ("para quantas pessoas é a reserva?", "guests"),
  ("quanto paguei pela estadia?", "price"),
  ("quantas noites vamos ficar?", "nights"),
  ("tem wi-fi?", "amenity"),
  ("há estacionamento perto?", "amenity"),
  ("posso levar o meu cão?", "pets"),
  ("é permitido fumar?", "smoking"),
  ("quantos quartos tem a casa?", "bedrooms"),
  ("quais são as regras da casa?", "house_rules"),
  ("qual é a política de cancelamento?", "cancellation_policy"),
  ("qual é o código da porta?", "check_in_info"),
  ("o meu pedido de reserva foi aprovado?", "requests"),
  ("quando expira a oferta?", "offers"),
  ("mostra as minhas viagens todas", "trips_list"),
  ("quero falar com um humano", "human"),
  ("preciso de cancelar a reserva", "cancellation"),
  ("podemos alterar as datas?", "change"),
  ("quero o reembolso", "refund"),
  ("como faço o pagamento?", "payment"),
  ("há fogo no prédio!", "urgent"),
  ("ficámos trancados fora de casa", "urgent"),
  ("muito obrigada!", "thanks"),
  ("olá, bom dia", "greeting"),
 ],
 "fr": [
  ("À quelle heure peut-on faire le check-in ?", "check_in"),
  ("quand est l'arrivée ?", "check_in"),
  ("à quelle heure faut-il libérer l'appartement ?", "check_out"),
  ("quelle est l'adresse ?", "address"),
  ("où se trouve le logement ?", "address"),
  ("combien de personnes sur ma réservation ?", "guests"),
  ("combien ai-je payé ?", "price"),
  ("combien de nuits ?", "nights"),
  ("y a-t-il le wifi ?", "amenity"),
  ("est-ce qu'il y a un parking ?", "amenity"),
  ("les chiens sont acceptés ?", "pets"),
  ("peut-on fumer dans l'appartement ?", "smoking"),
  ("combien de chambres ?", "bedrooms"),
  ("quel est le règlement intérieur ?", "house_rules"),
  ("quelle est la politique d'annulation ?", "cancellation_policy"),
  ("quel est le code de la boîte à clés ?", "check_in_info"),
  ("ma demande de réservation est-elle acceptée ?", "requests"),
  ("quand expire l'offre ?", "offers"),
  ("liste de tous mes voyages", "trips_list"),
  ("je veux parler à un humain", "human"),
  ("je voudrais annuler mon séjour", "cancellation"),
  ("peut-on modifier les dates ?", "change"),
  ("je veux être remboursé", "refund"),
  ("comment payer ?", "payment"),
  ("il y a une fuite de gaz !", "urgent"),
  ("plus d'électricité dans l'appartement", "urgent"),
  ("merci beaucoup", "thanks"),
  ("bonjour", "greeting"),
 ],
 "en": [
  ("what time's check-in on friday", "check_in"),
  ("when do we have to be out of the flat", "check_out"),
  ("what's the exact address", "address"),
  ("how much was the booking per night?", "price"),
  ("is there a pool?", "amenity"),
  ("are dogs ok?", "pets"),
  ("what's the keybox code", "check_in_info"),
  ("i need to cancel my reservation", "cancellation"),
  ("can i add one more guest", "change"),
  ("i want a refund", "refund"),
  ("how can i pay for it", "payment"),
  ("the apartment is flooding!!", "urgent"),
  ("we're locked out and it's midnight", "urgent"),
  ("there's no power in the flat", "urgent"),
  ("all my trips please", "trips_list"),
 ],
}


CASES = [(lang, text, intent) for lang, items in HELD_OUT.items() for text, intent in items]


@pytest.mark.parametrize("lang", list(HELD_OUT))
def test_held_out_phrasings_are_understood_in_each_language(lang: str) -> None:
    items = HELD_OUT[lang]
    misses = [(text, want, understand(text).intent) for text, want in items if understand(text).intent != want]
    assert len(misses) <= len(items) // 10, misses
    wrong_language = [(text, understand(text).language) for text, _want in items
                      if understand(text).language not in (lang, None)]
    assert len(wrong_language) <= len(items) // 10, wrong_language


def test_understanding_is_deterministic() -> None:
    first = [understand(text) for _lang, text, _intent in CASES]
    assert [understand(text) for _lang, text, _intent in CASES] == first


def _pt_day(value: dt.date, locale: str = "pt_PT") -> str:
    return format_skeleton("MMMMEd", value, locale=locale)


def test_answers_in_the_questions_language_with_its_formats(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")  # no locale: each answer follows its question
    reply = ask(app, client, ana, "¿cuánto pagué por Lisboa?") or ""
    eur_es = format_currency(Decimal("450.00"), "EUR", locale="es")
    assert "Pagaste" in reply and eur_es in reply and "3 noches" in reply and "por noche" in reply, reply
    reply = ask(app, client, ana, "à quelle heure est l'arrivée à Lisbonne ?") or ""
    assert "L'arrivée à Casa Azul" in reply and format_skeleton("MMMMEd", ANA_NEXT, locale="fr") in reply, reply
    reply = ask(app, client, ana, "qual é a morada em Lisboa?") or ""
    assert "A sua estadia é em Casa Azul, Lisbon: Rua das Flores 12." == reply, reply
    reply = ask(app, client, ana, "combien de nuits à Lisbonne ?") or ""
    assert "3 nuits" in reply, reply
    reply = ask(app, client, ana, "¿hay aire acondicionado en lisboa?") or ""
    assert reply.startswith("Sí: Casa Azul incluye «Air conditioning»"), reply
    reply = ask(app, client, ana, "tem piscina em Lisboa?") or ""
    assert reply == "«piscina» não consta das comodidades de Casa Azul.", reply
    reply = ask(app, client, ana, "How many nights in Lisbon?") or ""
    assert "3 nights" in reply, reply


def test_the_question_decides_the_language_and_the_users_locale_when_it_has_none(
    app: Any, client: Any, auth: Any
) -> None:
    seed(app)
    pia = auth("pia", "guest")  # locale pt-PT
    reply = ask(app, client, pia, "wifi?") or ""  # no language of its own: the user's locale
    assert reply.startswith(("Sim:", "Não")), reply
    reply = ask(app, client, pia, "when is check-in?") or ""  # asked in English, answered in English
    assert "Check-in" in reply and "A entrada" not in reply, reply
    reply = ask(app, client, pia, "quando é a entrada?") or ""
    assert reply.startswith("A entrada em Casa Azul é em") and _pt_day(PIA_TRIP) in reply, reply
    reply = ask(app, client, pia, "quanto paguei?") or ""
    assert format_currency(Decimal("300.00"), "EUR", locale="pt_PT") in reply and "por noite" in reply, reply


def test_a_question_without_a_language_keeps_the_conversations(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    assert (ask(app, client, ana, "¿dónde está el piso en Lisboa?") or "").startswith("Te alojas en")
    reply = ask(app, client, ana, "wifi?") or ""  # every language says "wifi": the conversation's goes on
    assert reply.startswith("Sí:"), reply


def test_every_sentence_exists_in_every_language() -> None:
    for table in (TEXTS, STATUSES, AMENITY_NAMES):
        for key, by_language in table.items():
            assert set(by_language) == set(LANGUAGES), key
    for key, by_language in FORMS.items():
        assert set(by_language) == set(LANGUAGES), key
        assert all("other" in forms for forms in by_language.values()), key
