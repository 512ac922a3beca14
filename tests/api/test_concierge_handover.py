"""Hand-overs (SPEC §5.2, §7): what the bot cannot do is handed to a person with its reason and said so, in the
question's language; urgent problems at once, with the emergency number; two misunderstandings in a row; one "the
team has been alerted" message when nobody replied within 30 minutes; and the admin list's reason, waiting time,
reason filter and urgent hand-overs first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import update

from concierge.scheduling import HANDOVER_ALERT_AFTER, alert_unanswered_handovers
from messaging.store.db import get_session, session_scope, utcnow
from messaging.store.models import ConciergeThread, Message
from tests.api.test_concierge_answers import ask, seed, thread_of

# (question, reason, what the reply must say) — held-out phrasings in four languages.
HANDOVERS = [
    ("please cancel my trip to lisbon", "cancellation", "can't cancel a booking myself"),
    ("quiero anular mi reserva", "cancellation", "No puedo cancelar una reserva"),
    ("quero cancelar a viagem", "cancellation", "Não posso cancelar uma reserva"),
    ("je veux annuler ma réservation", "cancellation", "Je ne peux pas annuler"),
    ("can we change our dates to a week later", "change", "can't change dates or guests myself"),
    ("¿puedo añadir un huésped más?", "change", "No puedo cambiar fechas"),
    ("queremos prolongar a estadia", "change", "Não posso alterar datas"),
    ("je voudrais ajouter une personne", "change", "Je ne peux pas modifier"),
    ("I'd like my money back", "refund", "can't issue refunds myself"),
    ("quiero un reembolso", "refund", "No puedo hacer reembolsos"),
    ("quero o meu dinheiro de volta", "refund", "Não posso fazer reembolsos"),
    ("je demande un remboursement", "refund", "Je ne peux pas effectuer de remboursement"),
    ("how do I pay the deposit?", "other", "can't accept offers or take payments"),
    ("quiero aceptar la oferta y pagar", "other", "No puedo aceptar ofertas"),
    ("como faço o pagamento com cartão?", "other", "Não posso aceitar ofertas"),
    ("je veux payer par carte", "other", "Je ne peux pas accepter"),
    ("let me talk to a human", "asked", "person from our team"),
]
URGENT = [
    ("There's smoke and fire in the kitchen!!", "call the local emergency number (112 in the EU)"),
    ("we are locked out and it's 2am", "112"),
    ("no hot water and no power since this morning", "112"),
    ("¡Hay una fuga de gas en el piso!", "llama primero al número de emergencias local (112 en la UE)"),
    ("mi hijo está herido, necesito un médico", "112"),
    ("o apartamento está inundado", "ligue primeiro para o número de emergência local (112 na UE)"),
    ("não conseguimos entrar, a chave não funciona", "112"),
    ("il y a un incendie dans l'immeuble", "appelez d'abord le numéro d'urgence local (112 dans l'UE)"),
    ("pas d'électricité ni de chauffage", "112"),
]


@pytest.mark.parametrize(("question", "reason", "said"), HANDOVERS)
def test_what_the_bot_cannot_do_is_handed_over_with_its_reason(
    app: Any, client: Any, auth: Any, question: str, reason: str, said: str
) -> None:
    seed(app)
    ana = auth("ana", "guest")
    reply = ask(app, client, ana, question) or ""
    assert said in reply, reply
    assert "Rua das Flores" not in reply and "3 guests" not in reply  # never a trip summary as if done
    thread = thread_of(app, "ana")
    assert thread.needs_human and thread.handover_reason == reason and thread.handed_over_at is not None
    assert ask(app, client, ana, "when is check in?") is None  # a person has it: the bot stays quiet


@pytest.mark.parametrize(("question", "said"), URGENT)
def test_urgent_problems_are_handed_over_at_once(
    app: Any, client: Any, auth: Any, question: str, said: str
) -> None:
    seed(app)
    reply = ask(app, client, auth("ana", "guest"), question) or ""
    assert said in reply, reply
    thread = thread_of(app, "ana")
    assert thread.needs_human and thread.handover_reason == "urgent"


def test_an_urgent_problem_while_a_person_has_it_is_escalated_once(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    ask(app, client, ana, "I want to cancel")
    since = thread_of(app, "ana").handed_over_at
    assert ask(app, client, ana, "hello?") is None
    assert "112" in (ask(app, client, ana, "there is water leaking from the ceiling") or "")
    thread = thread_of(app, "ana")
    assert thread.handover_reason == "urgent" and thread.handed_over_at == since
    assert ask(app, client, ana, "the flood is getting worse") is None  # told once; the person has it


def test_two_misunderstandings_in_a_row_hand_over(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    bea = auth("bea", "guest")
    first = ask(app, client, bea, "qwerty zxcv") or ""
    assert first.startswith("Sorry, I didn't catch that.") and "your trips" in first
    assert not thread_of(app, "bea").needs_human
    second = ask(app, client, bea, "blorp blorp") or ""
    assert "asked a person from our team" in second
    thread = thread_of(app, "bea")
    assert thread.needs_human and thread.handover_reason == "not_understood"


def _age_handover(app: Any, user_id: str, by: dt.timedelta) -> None:
    with app.app_context(), session_scope() as s:
        s.execute(update(ConciergeThread).where(ConciergeThread.user_id == user_id)
                  .values(handed_over_at=ConciergeThread.handed_over_at - by))


def _alert(app: Any) -> int:
    with app.app_context(), session_scope() as s:
        return alert_unanswered_handovers(s, utcnow())


def _messages(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    conversation = client.get("/v1/concierge", headers=headers).json["id"]
    return list(client.get(f"/v1/conversations/{conversation}/messages", headers=headers).json["items"])


def test_no_reply_within_30_minutes_tells_the_user_once(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana = auth("ana", "guest")
    ask(app, client, ana, "quiero un reembolso")
    assert _alert(app) == 0  # not yet 30 minutes
    _age_handover(app, "ana", HANDOVER_ALERT_AFTER + dt.timedelta(seconds=1))
    assert _alert(app) == 1
    assert _alert(app) == 0  # once per hand-over
    last = _messages(client, ana)[-1]
    assert last["senderType"] == "concierge"
    assert last["message"] == "El equipo ha sido avisado y te responderá aquí lo antes posible."
    assert thread_of(app, "ana").team_alerted_at is not None


def test_a_person_who_replied_in_time_means_no_alert(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana, root = auth("ana", "guest"), auth("root", "admin")
    ask(app, client, ana, "I need a refund")
    conversation = client.get("/v1/concierge", headers=ana).json["id"]
    replied = client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "On it, Ana."},
                          headers=root)
    assert replied.status_code == 201, replied.json
    _age_handover(app, "ana", HANDOVER_ALERT_AFTER + dt.timedelta(minutes=5))
    assert _alert(app) == 0
    # Handed back and over again: a new hand-over waits anew.
    assert client.post(f"/v1/admin/transcripts/{conversation}/handback", headers=root).status_code == 200
    assert thread_of(app, "ana").handover_reason is None
    with app.app_context(), session_scope() as s:  # the admin's reply was long before the next hand-over
        s.execute(update(Message).where(Message.conversation_id == conversation)
                  .values(created_at=Message.created_at - dt.timedelta(hours=2)))
    ask(app, client, ana, "cancel my booking please")
    _age_handover(app, "ana", HANDOVER_ALERT_AFTER + dt.timedelta(minutes=1))
    assert _alert(app) == 1
    assert _messages(client, ana)[-1]["message"] == "The team has been alerted and will reply here as soon as " \
                                                    "possible."


def test_an_admin_takeover_is_no_bot_hand_over(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ana, root = auth("ana", "guest"), auth("root", "admin")
    conversation = client.get("/v1/concierge", headers=ana).json["id"]
    assert client.post(f"/v1/admin/transcripts/{conversation}/takeover", headers=root).status_code == 200
    thread = thread_of(app, "ana")
    assert thread.needs_human and thread.handover_reason is None and thread.handed_over_at is None
    assert _alert(app) == 0


# --- the admin list ------------------------------------------------------------------------------------------


def _list(client: Any, headers: dict[str, str], query: str = "") -> Any:
    response = client.get(f"/v1/admin/transcripts{query}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_admins_see_reason_and_waiting_time_urgent_first(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    root = auth("root", "admin")
    ask(app, client, auth("ana", "guest"), "there's a fire!")  # urgent, asked first
    ask(app, client, auth("bea", "guest"), "please cancel my trip")
    ask(app, client, auth("pia", "guest"), "I want a refund")
    ask(app, client, auth("cai", "guest"), "hi")  # the bot still has it
    items = _list(client, root)["items"]
    by_user = {i["users"][0]["userId"]: i for i in items}
    assert items[0]["users"][0]["userId"] == "ana"  # urgent first, though its activity is the oldest
    assert by_user["ana"]["handoverReason"] == "urgent" and by_user["ana"]["waitingSince"]
    assert by_user["bea"]["handoverReason"] == "cancellation"
    assert by_user["cai"]["handoverReason"] is None and by_user["cai"]["waitingSince"] is None
    assert [i["users"][0]["userId"] for i in _list(client, root, "?reason=refund")["items"]] == ["pia"]
    urgent = _list(client, root, "?needsHuman=true&reason=urgent")["items"]
    assert [i["users"][0]["userId"] for i in urgent] == ["ana"]
    assert client.get("/v1/admin/transcripts?reason=bored", headers=root).status_code == 422
    detail = client.get(f"/v1/admin/transcripts/{by_user['ana']['conversationId']}", headers=root).json
    assert detail["handoverReason"] == "urgent" and detail["waitingSince"] == by_user["ana"]["waitingSince"]
    # Paging keeps the order: urgent first, then by activity, each thread once.
    seen, cursor = [], None
    while True:
        page = _list(client, root, "?limit=1" + (f"&before={cursor}" if cursor else ""))
        seen += [i["users"][0]["userId"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [i["users"][0]["userId"] for i in items]


def test_the_alert_reads_only_handed_over_threads(app: Any, client: Any, auth: Any) -> None:
    seed(app)
    ask(app, client, auth("ana", "guest"), "hi")
    with app.app_context():
        assert get_session().query(ConciergeThread).filter(ConciergeThread.handed_over_at.isnot(None)).count() == 0
    assert _alert(app) == 0
