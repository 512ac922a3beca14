"""What the concierge says in a conversation, in each language it speaks (concierge.locales.LANGUAGES).

``say(lang, key, **values)`` fills a sentence of :data:`TEXTS`; ``count(lang, key, n)`` writes a number of things
by the language's plural rule ("3 nights", "1 noche"); ``date_range`` and ``duration`` build on them. Every
sentence exists in every language (a test checks it): a missing one is a bug, not a fallback to English.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from concierge.locales import Language, day, plural

TEXTS: dict[str, dict[str, str]] = {
    # --- what the concierge can do, greetings, not understood ---
    "help_traveler": {
        "en": "I can tell you about your trips (dates, nights, check-in and check-out times, the address, guests, "
              "what you paid), the property you're staying at (amenities, pets, smoking, house rules, bedrooms, "
              "cancellation policy…), your requests to book and your offers. Ask for a person at any time and "
              "someone from the team will take over.",
        "es": "Puedo informarte sobre tus viajes (fechas, noches, horas de entrada y salida, la dirección, huéspedes, "
              "lo que pagaste), el alojamiento (comodidades, mascotas, fumar, normas de la casa, habitaciones, "
              "política de cancelación…), tus solicitudes de reserva y tus ofertas. Pide hablar con una persona "
              "cuando quieras y alguien del equipo te atenderá.",
        "pt": "Posso informar sobre as suas viagens (datas, noites, horas de entrada e saída, a morada, hóspedes, "
              "quanto pagou), o alojamento (comodidades, animais, fumar, regras da casa, quartos, política de "
              "cancelamento…), os seus pedidos de reserva e as suas ofertas. Peça para falar com uma pessoa quando "
              "quiser e alguém da equipa responderá.",
        "fr": "Je peux vous renseigner sur vos voyages (dates, nuits, heures d'arrivée et de départ, l'adresse, "
              "voyageurs, ce que vous avez payé), le logement (équipements, animaux, tabac, règlement intérieur, "
              "chambres, politique d'annulation…), vos demandes de réservation et vos offres. Demandez à parler à "
              "une personne quand vous voulez et quelqu'un de l'équipe prendra le relais.",
    },
    "help_host": {
        "en": "I can tell you about arrivals and departures at your properties, the requests to book waiting for "
              "your answer, and the travelers waiting for your reply in property threads. Ask for a person at any "
              "time and someone from the team will take over.",
        "es": "Puedo informarte sobre las llegadas y salidas en tus alojamientos, las solicitudes de reserva que "
              "esperan tu respuesta y los viajeros que esperan tu respuesta en las conversaciones. Pide hablar con "
              "una persona cuando quieras y alguien del equipo te atenderá.",
        "pt": "Posso informar sobre as chegadas e saídas nos seus alojamentos, os pedidos de reserva à espera da "
              "sua resposta e os viajantes à espera da sua resposta nas conversas. Peça para falar com uma pessoa "
              "quando quiser e alguém da equipa responderá.",
        "fr": "Je peux vous renseigner sur les arrivées et départs dans vos logements, les demandes de réservation "
              "qui attendent votre réponse et les voyageurs qui attendent votre réponse dans les conversations. "
              "Demandez à parler à une personne quand vous voulez et quelqu'un de l'équipe prendra le relais.",
    },
    "greeting": {"en": "Hi{name}! ", "es": "¡Hola{name}! ", "pt": "Olá{name}! ", "fr": "Bonjour{name} ! "},
    "thanks": {
        "en": "You're welcome! Anything else about your trip, just ask.",
        "es": "¡De nada! Si necesitas algo más sobre tu viaje, pregunta.",
        "pt": "De nada! Se precisar de mais alguma coisa sobre a sua viagem, é só perguntar.",
        "fr": "Avec plaisir ! Pour toute autre question sur votre voyage, n'hésitez pas.",
    },
    "thanks_host": {
        "en": "You're welcome! Anything else about your properties, just ask.",
        "es": "¡De nada! Si necesitas algo más sobre tus alojamientos, pregunta.",
        "pt": "De nada! Se precisar de mais alguma coisa sobre os seus alojamentos, é só perguntar.",
        "fr": "Avec plaisir ! Pour toute autre question sur vos logements, n'hésitez pas.",
    },
    "not_understood": {
        "en": "Sorry, I didn't catch that. ",
        "es": "Perdona, no lo he entendido. ",
        "pt": "Desculpe, não percebi. ",
        "fr": "Désolé, je n'ai pas compris. ",
    },
    # --- hand-overs (SPEC §5.2) ---
    "handover_asked": {
        "en": "I've asked a person from our team to help you here; they will reply in this conversation shortly.",
        "es": "He pedido a una persona de nuestro equipo que te ayude; te responderá en esta conversación en breve.",
        "pt": "Pedi a uma pessoa da nossa equipa que o ajude; responderá nesta conversa em breve.",
        "fr": "J'ai demandé à une personne de notre équipe de vous aider ; elle vous répondra ici très bientôt.",
    },
    "handover_not_understood": {
        "en": "I'm not getting this right, so I've asked a person from our team to help; they will reply in this "
              "conversation shortly.",
        "es": "No estoy entendiendo bien, así que he pedido a una persona de nuestro equipo que te ayude; te "
              "responderá en esta conversación en breve.",
        "pt": "Não estou a perceber bem, por isso pedi a uma pessoa da nossa equipa que o ajude; responderá nesta "
              "conversa em breve.",
        "fr": "Je ne comprends pas bien, j'ai donc demandé à une personne de notre équipe de vous aider ; elle vous "
              "répondra ici très bientôt.",
    },
    "handover_cancellation": {
        "en": "I can't cancel a booking myself, and nothing has been cancelled. I've asked a person from our team "
              "to help you with the cancellation; they will reply in this conversation shortly.",
        "es": "No puedo cancelar una reserva yo mismo y no se ha cancelado nada. He pedido a una persona de "
              "nuestro equipo que te ayude con la cancelación; te responderá aquí en breve.",
        "pt": "Não posso cancelar uma reserva e nada foi cancelado. Pedi a uma pessoa da nossa equipa que o ajude "
              "com o cancelamento; responderá nesta conversa em breve.",
        "fr": "Je ne peux pas annuler une réservation moi-même, et rien n'a été annulé. J'ai demandé à une "
              "personne de notre équipe de vous aider pour l'annulation ; elle vous répondra ici très bientôt.",
    },
    "handover_change": {
        "en": "I can't change dates or guests myself, and nothing has been changed. I've asked a person from our "
              "team to help you with the change; they will reply in this conversation shortly.",
        "es": "No puedo cambiar fechas ni huéspedes yo mismo y no se ha cambiado nada. He pedido a una persona de "
              "nuestro equipo que te ayude con el cambio; te responderá aquí en breve.",
        "pt": "Não posso alterar datas nem hóspedes e nada foi alterado. Pedi a uma pessoa da nossa equipa que o "
              "ajude com a alteração; responderá nesta conversa em breve.",
        "fr": "Je ne peux pas modifier les dates ou les voyageurs moi-même, et rien n'a été modifié. J'ai demandé "
              "à une personne de notre équipe de vous aider ; elle vous répondra ici très bientôt.",
    },
    "handover_refund": {
        "en": "I can't issue refunds myself. I've asked a person from our team to look into your refund; they "
              "will reply in this conversation shortly.",
        "es": "No puedo hacer reembolsos yo mismo. He pedido a una persona de nuestro equipo que revise tu "
              "reembolso; te responderá aquí en breve.",
        "pt": "Não posso fazer reembolsos. Pedi a uma pessoa da nossa equipa que trate do seu reembolso; "
              "responderá nesta conversa em breve.",
        "fr": "Je ne peux pas effectuer de remboursement moi-même. J'ai demandé à une personne de notre équipe "
              "d'examiner votre remboursement ; elle vous répondra ici très bientôt.",
    },
    "handover_payment": {
        "en": "I can't accept offers or take payments myself. I've asked a person from our team to help you; "
              "they will reply in this conversation shortly.",
        "es": "No puedo aceptar ofertas ni gestionar pagos yo mismo. He pedido a una persona de nuestro equipo que "
              "te ayude; te responderá aquí en breve.",
        "pt": "Não posso aceitar ofertas nem tratar de pagamentos. Pedi a uma pessoa da nossa equipa que o ajude; "
              "responderá nesta conversa em breve.",
        "fr": "Je ne peux pas accepter d'offre ni gérer de paiement moi-même. J'ai demandé à une personne de notre "
              "équipe de vous aider ; elle vous répondra ici très bientôt.",
    },
    "urgent": {
        "en": "This sounds urgent: I'm alerting a person from our team right now, and they will reply here. If "
              "anyone is in danger, call the local emergency number (112 in the EU) first.",
        "es": "Esto parece urgente: estoy avisando ahora mismo a una persona de nuestro equipo, que te responderá "
              "aquí. Si alguien está en peligro, llama primero al número de emergencias local (112 en la UE).",
        "pt": "Isto parece urgente: estou a alertar agora mesmo uma pessoa da nossa equipa, que responderá aqui. "
              "Se alguém estiver em perigo, ligue primeiro para o número de emergência local (112 na UE).",
        "fr": "Cela semble urgent : je préviens tout de suite une personne de notre équipe, qui vous répondra "
              "ici. Si quelqu'un est en danger, appelez d'abord le numéro d'urgence local (112 dans l'UE).",
    },
    "team_alerted": {
        "en": "The team has been alerted and will reply here as soon as possible.",
        "es": "El equipo ha sido avisado y te responderá aquí lo antes posible.",
        "pt": "A equipa foi alertada e responderá aqui o mais depressa possível.",
        "fr": "L'équipe a été prévenue et vous répondra ici dès que possible.",
    },
    # --- trips ---
    "no_trip": {
        "en": "I don't see an upcoming trip booked for you. If you've just booked, the confirmation will appear "
              "here shortly.",
        "es": "No veo ningún viaje reservado próximamente. Si acabas de reservar, la confirmación aparecerá aquí "
              "en breve.",
        "pt": "Não vejo nenhuma viagem reservada em breve. Se acabou de reservar, a confirmação aparecerá aqui "
              "em breve.",
        "fr": "Je ne vois aucun voyage à venir réservé à votre nom. Si vous venez de réserver, la confirmation "
              "apparaîtra ici sous peu.",
    },
    "no_trip_named": {
        "en": "I don't see a trip of yours matching that. Your upcoming trips: {trips}.",
        "es": "No veo ningún viaje tuyo que coincida. Tus próximos viajes: {trips}.",
        "pt": "Não vejo nenhuma viagem sua que corresponda. As suas próximas viagens: {trips}.",
        "fr": "Je ne vois aucun voyage à votre nom qui corresponde. Vos prochains voyages : {trips}.",
    },
    "which_next": {
        "en": "About your next trip, {place} ({dates}): ",
        "es": "Sobre tu próximo viaje, {place} ({dates}): ",
        "pt": "Sobre a sua próxima viagem, {place} ({dates}): ",
        "fr": "À propos de votre prochain voyage, {place} ({dates}) : ",
    },
    "trip_summary": {
        "en": "Your trip to {place}: {dates}, {guests}. Check-in from {check_in} on {check_in_day}, check-out by "
              "{check_out} on {check_out_day}. Address: {address}.",
        "es": "Tu viaje a {place}: {dates}, {guests}. Entrada desde las {check_in} el {check_in_day}, salida "
              "antes de las {check_out} el {check_out_day}. Dirección: {address}.",
        "pt": "A sua viagem a {place}: {dates}, {guests}. Entrada a partir das {check_in} em {check_in_day}, "
              "saída até às {check_out} em {check_out_day}. Morada: {address}.",
        "fr": "Votre voyage à {place} : {dates}, {guests}. Arrivée à partir de {check_in} le {check_in_day}, "
              "départ avant {check_out} le {check_out_day}. Adresse : {address}.",
    },
    "trips_list": {
        "en": "Your upcoming trips: {trips}.",
        "es": "Tus próximos viajes: {trips}.",
        "pt": "As suas próximas viagens: {trips}.",
        "fr": "Vos prochains voyages : {trips}.",
    },
    "check_in": {
        "en": "Check-in at {name} is on {day} from {time} (local time, {tz}). The address is {address}.",
        "es": "La entrada en {name} es el {day} a partir de las {time} (hora local, {tz}). La dirección es "
              "{address}.",
        "pt": "A entrada em {name} é em {day} a partir das {time} (hora local, {tz}). A morada é {address}.",
        "fr": "L'arrivée à {name} est le {day} à partir de {time} (heure locale, {tz}). L'adresse est {address}.",
    },
    "check_out": {
        "en": "Check-out from {name} is on {day} by {time}.",
        "es": "La salida de {name} es el {day} antes de las {time}.",
        "pt": "A saída de {name} é em {day} até às {time}.",
        "fr": "Le départ de {name} est le {day} avant {time}.",
    },
    "address": {
        "en": "Your stay is at {place}: {address}.",
        "es": "Te alojas en {place}: {address}.",
        "pt": "A sua estadia é em {place}: {address}.",
        "fr": "Vous logez à {place} : {address}.",
    },
    "address_unlisted": {
        "en": "the address is not listed yet", "es": "la dirección aún no figura",
        "pt": "a morada ainda não consta", "fr": "l'adresse n'est pas encore indiquée",
    },
    "guests": {
        "en": "Your booking at {name} ({dates}) is for {guests}.",
        "es": "Tu reserva en {name} ({dates}) es para {guests}.",
        "pt": "A sua reserva em {name} ({dates}) é para {guests}.",
        "fr": "Votre réservation à {name} ({dates}) est pour {guests}.",
    },
    "nights": {
        "en": "Your stay at {name} is {nights}: {dates}.",
        "es": "Tu estancia en {name} es de {nights}: {dates}.",
        "pt": "A sua estadia em {name} é de {nights}: {dates}.",
        "fr": "Votre séjour à {name} dure {nights} : {dates}.",
    },
    "days_until": {
        "en": "{days} to go: check-in at {name} is on {day}.",
        "es": "Faltan {days}: la entrada en {name} es el {day}.",
        "pt": "Faltam {days}: a entrada em {name} é em {day}.",
        "fr": "Plus que {days} : l'arrivée à {name} est le {day}.",
    },
    "days_until_today": {
        "en": "Check-in at {name} is today, from {time}.",
        "es": "La entrada en {name} es hoy, a partir de las {time}.",
        "pt": "A entrada em {name} é hoje, a partir das {time}.",
        "fr": "L'arrivée à {name} est aujourd'hui, à partir de {time}.",
    },
    "staying_now": {
        "en": "You're staying at {name} now; check-out is on {day} by {time}.",
        "es": "Ahora te alojas en {name}; la salida es el {day} antes de las {time}.",
        "pt": "Está agora em {name}; a saída é em {day} até às {time}.",
        "fr": "Vous logez actuellement à {name} ; le départ est le {day} avant {time}.",
    },
    "price": {
        "en": "You paid {total} for {nights} at {name} ({dates}): {per_night} per night.",
        "es": "Pagaste {total} por {nights} en {name} ({dates}): {per_night} por noche.",
        "pt": "Pagou {total} por {nights} em {name} ({dates}): {per_night} por noite.",
        "fr": "Vous avez payé {total} pour {nights} à {name} ({dates}) : {per_night} par nuit.",
    },
    "price_unlisted": {
        "en": "The price of your stay at {name} ({dates}, {nights}) is not listed here.",
        "es": "El precio de tu estancia en {name} ({dates}, {nights}) no figura aquí.",
        "pt": "O preço da sua estadia em {name} ({dates}, {nights}) não consta aqui.",
        "fr": "Le prix de votre séjour à {name} ({dates}, {nights}) n'est pas indiqué ici.",
    },
    "check_in_info": {
        "en": "How to get into {name}: {info}",
        "es": "Cómo entrar en {name}: {info}",
        "pt": "Como entrar em {name}: {info}",
        "fr": "Comment entrer à {name} : {info}",
    },
    "check_in_info_later": {
        "en": "I'll share the check-in instructions for {name} from {moment}, 72 hours before check-in.",
        "es": "Compartiré las instrucciones de llegada de {name} a partir del {moment}, 72 horas antes de la "
              "entrada.",
        "pt": "Partilharei as instruções de entrada de {name} a partir de {moment}, 72 horas antes da entrada.",
        "fr": "Je partagerai les instructions d'arrivée de {name} à partir du {moment}, 72 heures avant "
              "l'arrivée.",
    },
    "check_in_info_over": {
        "en": "Your stay at {name} is over, so I no longer share its check-in instructions.",
        "es": "Tu estancia en {name} ha terminado, así que ya no comparto sus instrucciones de llegada.",
        "pt": "A sua estadia em {name} terminou, por isso já não partilho as instruções de entrada.",
        "fr": "Votre séjour à {name} est terminé, je ne partage donc plus ses instructions d'arrivée.",
    },
    "check_in_info_unlisted": {
        "en": "The check-in instructions for {name} are not listed yet.",
        "es": "Las instrucciones de llegada de {name} aún no figuran.",
        "pt": "As instruções de entrada de {name} ainda não constam.",
        "fr": "Les instructions d'arrivée de {name} ne sont pas encore indiquées.",
    },
    "check_in_info_host": {
        "en": "Check-in instructions are shared only with your guests, from 72 hours before their check-in.",
        "es": "Las instrucciones de llegada solo se comparten con tus huéspedes, desde 72 horas antes de su "
              "entrada.",
        "pt": "As instruções de entrada só são partilhadas com os seus hóspedes, a partir de 72 horas antes da "
              "entrada.",
        "fr": "Les instructions d'arrivée ne sont partagées qu'avec vos voyageurs, à partir de 72 heures avant "
              "leur arrivée.",
    },
    # --- the property's facts ---
    "amenity_yes": {
        "en": "Yes: {name} lists {amenity} among its amenities.",
        "es": "Sí: {name} incluye «{amenity}» entre sus comodidades.",
        "pt": "Sim: {name} inclui «{amenity}» nas suas comodidades.",
        "fr": "Oui : {name} indique « {amenity} » parmi ses équipements.",
    },
    "amenity_unlisted": {
        "en": "{thing} is not listed among the amenities of {name}.",
        "es": "«{thing}» no figura entre las comodidades de {name}.",
        "pt": "«{thing}» não consta das comodidades de {name}.",
        "fr": "« {thing} » ne figure pas parmi les équipements de {name}.",
    },
    "amenities_unknown": {
        "en": "The amenities of {name} are not listed, so I can't say.",
        "es": "Las comodidades de {name} no figuran, así que no puedo decirlo.",
        "pt": "As comodidades de {name} não constam, por isso não posso dizer.",
        "fr": "Les équipements de {name} ne sont pas indiqués, je ne peux donc pas le dire.",
    },
    "amenities": {
        "en": "Amenities at {name}: {list}.",
        "es": "Comodidades de {name}: {list}.",
        "pt": "Comodidades de {name}: {list}.",
        "fr": "Équipements de {name} : {list}.",
    },
    "pets_yes": {"en": "Pets are allowed at {name}.", "es": "Se admiten mascotas en {name}.",
                 "pt": "São permitidos animais em {name}.", "fr": "Les animaux sont acceptés à {name}."},
    "pets_no": {"en": "Pets are not allowed at {name}.", "es": "No se admiten mascotas en {name}.",
                "pt": "Não são permitidos animais em {name}.", "fr": "Les animaux ne sont pas acceptés à {name}."},
    "pets_unlisted": {
        "en": "Whether pets are allowed at {name} is not listed.",
        "es": "No figura si se admiten mascotas en {name}.",
        "pt": "Não consta se são permitidos animais em {name}.",
        "fr": "Il n'est pas indiqué si les animaux sont acceptés à {name}.",
    },
    "smoking_yes": {"en": "Smoking is allowed at {name}.", "es": "Se permite fumar en {name}.",
                    "pt": "É permitido fumar em {name}.", "fr": "Il est permis de fumer à {name}."},
    "smoking_no": {"en": "Smoking is not allowed at {name}.", "es": "No se permite fumar en {name}.",
                   "pt": "Não é permitido fumar em {name}.", "fr": "Il est interdit de fumer à {name}."},
    "smoking_unlisted": {
        "en": "Whether smoking is allowed at {name} is not listed.",
        "es": "No figura si se permite fumar en {name}.",
        "pt": "Não consta se é permitido fumar em {name}.",
        "fr": "Il n'est pas indiqué s'il est permis de fumer à {name}.",
    },
    "bedrooms": {"en": "{name} has {count}.", "es": "{name} tiene {count}.", "pt": "{name} tem {count}.",
                 "fr": "{name} a {count}."},
    "bathrooms": {"en": "{name} has {count}.", "es": "{name} tiene {count}.", "pt": "{name} tem {count}.",
                  "fr": "{name} a {count}."},
    "max_guests": {
        "en": "{name} takes up to {count}.",
        "es": "{name} admite hasta {count}.",
        "pt": "{name} aceita até {count}.",
        "fr": "{name} accueille jusqu'à {count}.",
    },
    "house_rules": {"en": "House rules at {name}: {text}", "es": "Normas de la casa en {name}: {text}",
                    "pt": "Regras da casa em {name}: {text}", "fr": "Règlement intérieur de {name} : {text}"},
    "cancellation_policy": {
        "en": "The cancellation policy of {name}: {text}",
        "es": "La política de cancelación de {name}: {text}",
        "pt": "A política de cancelamento de {name}: {text}",
        "fr": "La politique d'annulation de {name} : {text}",
    },
    "about": {"en": "About {name}: {text}", "es": "Sobre {name}: {text}", "pt": "Sobre {name}: {text}",
              "fr": "À propos de {name} : {text}"},
    "bedrooms_unlisted": {
        "en": "The number of bedrooms at {name} is not listed.", "es": "El número de habitaciones de {name} no figura.",
        "pt": "O número de quartos de {name} não consta.", "fr": "Le nombre de chambres de {name} n'est pas indiqué.",
    },
    "bathrooms_unlisted": {
        "en": "The number of bathrooms at {name} is not listed.", "es": "El número de baños de {name} no figura.",
        "pt": "O número de casas de banho de {name} não consta.",
        "fr": "Le nombre de salles de bain de {name} n'est pas indiqué.",
    },
    "max_guests_unlisted": {
        "en": "The maximum number of guests at {name} is not listed.",
        "es": "El número máximo de huéspedes de {name} no figura.",
        "pt": "O número máximo de hóspedes de {name} não consta.",
        "fr": "Le nombre maximum de voyageurs de {name} n'est pas indiqué.",
    },
    "house_rules_unlisted": {
        "en": "The house rules of {name} are not listed.", "es": "Las normas de la casa de {name} no figuran.",
        "pt": "As regras da casa de {name} não constam.", "fr": "Le règlement intérieur de {name} n'est pas indiqué.",
    },
    "cancellation_policy_unlisted": {
        "en": "The cancellation policy of {name} is not listed.",
        "es": "La política de cancelación de {name} no figura.",
        "pt": "A política de cancelamento de {name} não consta.",
        "fr": "La politique d'annulation de {name} n'est pas indiquée.",
    },
    "about_unlisted": {
        "en": "A description of {name} is not listed.", "es": "La descripción de {name} no figura.",
        "pt": "A descrição de {name} não consta.", "fr": "La description de {name} n'est pas indiquée.",
    },
    # --- requests to book and offers ---
    "requests": {"en": "Your requests to book: {list}.", "es": "Tus solicitudes de reserva: {list}.",
                 "pt": "Os seus pedidos de reserva: {list}.", "fr": "Vos demandes de réservation : {list}."},
    "requests_none": {"en": "You have no requests to book.", "es": "No tienes solicitudes de reserva.",
                      "pt": "Não tem pedidos de reserva.", "fr": "Vous n'avez aucune demande de réservation."},
    "offers": {"en": "Your open offers: {list}.", "es": "Tus ofertas abiertas: {list}.",
               "pt": "As suas ofertas em aberto: {list}.", "fr": "Vos offres en cours : {list}."},
    "offers_none": {"en": "You have no open offers right now.", "es": "Ahora mismo no tienes ofertas abiertas.",
                    "pt": "Neste momento não tem ofertas em aberto.",
                    "fr": "Vous n'avez aucune offre en cours pour le moment."},
    "offer_line": {
        "en": "{name} ({dates}, {price}) expires {moment}, in {left}",
        "es": "{name} ({dates}, {price}) caduca el {moment}, dentro de {left}",
        "pt": "{name} ({dates}, {price}) expira em {moment}, daqui a {left}",
        "fr": "{name} ({dates}, {price}) expire le {moment}, dans {left}",
    },
    # --- hosts ---
    "host_arrivals": {"en": "Arriving {when}: {list}.", "es": "Llegan {when}: {list}.",
                      "pt": "Chegam {when}: {list}.", "fr": "Arrivées {when} : {list}."},
    "host_next_arrivals": {"en": "Next arrivals at your properties: {list}.",
                           "es": "Próximas llegadas a tus alojamientos: {list}.",
                           "pt": "Próximas chegadas aos seus alojamentos: {list}.",
                           "fr": "Prochaines arrivées dans vos logements : {list}."},
    "host_no_arrivals": {"en": "No guest is booked to arrive at your properties{when}.",
                         "es": "Ningún huésped tiene llegada reservada en tus alojamientos{when}.",
                         "pt": "Nenhum hóspede tem chegada marcada aos seus alojamentos{when}.",
                         "fr": "Aucun voyageur n'arrive dans vos logements{when}."},
    "arrival_line": {"en": "{guest} at {name}, {day} from {time} ({nights}, {guests})",
                     "es": "{guest} en {name}, {day} desde las {time} ({nights}, {guests})",
                     "pt": "{guest} em {name}, {day} a partir das {time} ({nights}, {guests})",
                     "fr": "{guest} à {name}, {day} à partir de {time} ({nights}, {guests})"},
    "host_departures": {"en": "Leaving {when}: {list}.", "es": "Se van {when}: {list}.",
                        "pt": "Saem {when}: {list}.", "fr": "Départs {when} : {list}."},
    "host_next_departures": {"en": "Next departures from your properties: {list}.",
                             "es": "Próximas salidas de tus alojamientos: {list}.",
                             "pt": "Próximas saídas dos seus alojamentos: {list}.",
                             "fr": "Prochains départs de vos logements : {list}."},
    "host_no_departures": {"en": "No guest is booked to leave your properties{when}.",
                           "es": "Ningún huésped tiene salida reservada de tus alojamientos{when}.",
                           "pt": "Nenhum hóspede tem saída marcada dos seus alojamentos{when}.",
                           "fr": "Aucun voyageur ne quitte vos logements{when}."},
    "departure_line": {"en": "{guest} from {name}, {day} by {time}",
                       "es": "{guest} de {name}, {day} antes de las {time}",
                       "pt": "{guest} de {name}, {day} até às {time}",
                       "fr": "{guest} de {name}, {day} avant {time}"},
    "host_requests": {"en": "Requests to book waiting for your answer: {list}.",
                      "es": "Solicitudes de reserva que esperan tu respuesta: {list}.",
                      "pt": "Pedidos de reserva à espera da sua resposta: {list}.",
                      "fr": "Demandes de réservation en attente de votre réponse : {list}."},
    "host_requests_none": {"en": "No request to book is waiting for your answer.",
                           "es": "Ninguna solicitud de reserva espera tu respuesta.",
                           "pt": "Nenhum pedido de reserva está à espera da sua resposta.",
                           "fr": "Aucune demande de réservation n'attend votre réponse."},
    "host_request_line": {"en": "{guest} for {name}, {dates}, {guests}, {price} (answer by {deadline})",
                          "es": "{guest} para {name}, {dates}, {guests}, {price} (responde antes del {deadline})",
                          "pt": "{guest} para {name}, {dates}, {guests}, {price} (responda até {deadline})",
                          "fr": "{guest} pour {name}, {dates}, {guests}, {price} (répondre avant le {deadline})"},
    "host_threads": {"en": "Travelers waiting for your reply: {list}.",
                     "es": "Viajeros que esperan tu respuesta: {list}.",
                     "pt": "Viajantes à espera da sua resposta: {list}.",
                     "fr": "Voyageurs qui attendent votre réponse : {list}."},
    "host_threads_none": {"en": "No traveler is waiting for your reply.",
                          "es": "Ningún viajero espera tu respuesta.",
                          "pt": "Nenhum viajante está à espera da sua resposta.",
                          "fr": "Aucun voyageur n'attend votre réponse."},
    "thread_line": {"en": "{guest} about {name}, since {moment}", "es": "{guest} sobre {name}, desde el {moment}",
                    "pt": "{guest} sobre {name}, desde {moment}", "fr": "{guest} pour {name}, depuis le {moment}"},
    "host_no_property": {"en": "I don't see a property of yours here yet.",
                         "es": "Todavía no veo ningún alojamiento tuyo aquí.",
                         "pt": "Ainda não vejo nenhum alojamento seu aqui.",
                         "fr": "Je ne vois encore aucun logement à votre nom ici."},
    # --- small words ---
    "today": {"en": "today", "es": "hoy", "pt": "hoje", "fr": "aujourd'hui"},
    "tomorrow": {"en": "tomorrow", "es": "mañana", "pt": "amanhã", "fr": "demain"},
    "a_guest": {"en": "A guest", "es": "Un huésped", "pt": "Um hóspede", "fr": "Un voyageur"},
    "less_than_a_minute": {"en": "less than a minute", "es": "menos de un minuto", "pt": "menos de um minuto",
                           "fr": "moins d'une minute"},
}

# Things counted, by CLDR plural form.
FORMS: dict[str, dict[str, dict[str, str]]] = {
    "nights": {"en": {"one": "{n} night", "other": "{n} nights"}, "es": {"one": "{n} noche", "other": "{n} noches"},
               "pt": {"one": "{n} noite", "other": "{n} noites"}, "fr": {"one": "{n} nuit", "other": "{n} nuits"}},
    "guests": {"en": {"one": "{n} guest", "other": "{n} guests"},
               "es": {"one": "{n} huésped", "other": "{n} huéspedes"},
               "pt": {"one": "{n} hóspede", "other": "{n} hóspedes"},
               "fr": {"one": "{n} voyageur", "other": "{n} voyageurs"}},
    "days": {"en": {"one": "{n} day", "other": "{n} days"}, "es": {"one": "{n} día", "other": "{n} días"},
             "pt": {"one": "{n} dia", "other": "{n} dias"}, "fr": {"one": "{n} jour", "other": "{n} jours"}},
    "hours": {"en": {"one": "{n} hour", "other": "{n} hours"}, "es": {"one": "{n} hora", "other": "{n} horas"},
              "pt": {"one": "{n} hora", "other": "{n} horas"}, "fr": {"one": "{n} heure", "other": "{n} heures"}},
    "minutes": {"en": {"one": "{n} minute", "other": "{n} minutes"},
                "es": {"one": "{n} minuto", "other": "{n} minutos"},
                "pt": {"one": "{n} minuto", "other": "{n} minutos"},
                "fr": {"one": "{n} minute", "other": "{n} minutes"}},
    "bedrooms": {"en": {"one": "{n} bedroom", "other": "{n} bedrooms"},
                 "es": {"one": "{n} habitación", "other": "{n} habitaciones"},
                 "pt": {"one": "{n} quarto", "other": "{n} quartos"},
                 "fr": {"one": "{n} chambre", "other": "{n} chambres"}},
    "bathrooms": {"en": {"one": "{n} bathroom", "other": "{n} bathrooms"},
                  "es": {"one": "{n} baño", "other": "{n} baños"},
                  "pt": {"one": "{n} casa de banho", "other": "{n} casas de banho"},
                  "fr": {"one": "{n} salle de bain", "other": "{n} salles de bain"}},
}

# Request-to-book statuses as a traveler reads them.
STATUSES: dict[str, dict[str, str]] = {
    "Pending": {"en": "waiting for the host's answer", "es": "esperando la respuesta del anfitrión",
                "pt": "à espera da resposta do anfitrião", "fr": "en attente de la réponse de l'hôte"},
    "Accepted": {"en": "approved", "es": "aprobada", "pt": "aprovado", "fr": "approuvée"},
    "Denied": {"en": "declined", "es": "rechazada", "pt": "recusado", "fr": "refusée"},
    "Withdrawn": {"en": "withdrawn", "es": "retirada", "pt": "retirado", "fr": "retirée"},
    "Expired": {"en": "expired", "es": "caducada", "pt": "expirado", "fr": "expirée"},
}

# How each amenity concept (concierge.lexicon.AMENITIES) is named in a sentence.
AMENITY_NAMES: dict[str, dict[str, str]] = {
    "wifi": {"en": "Wifi", "es": "wifi", "pt": "wi-fi", "fr": "wifi"},
    "parking": {"en": "Parking", "es": "aparcamiento", "pt": "estacionamento", "fr": "parking"},
    "pool": {"en": "A pool", "es": "piscina", "pt": "piscina", "fr": "piscine"},
    "air_conditioning": {"en": "Air conditioning", "es": "aire acondicionado", "pt": "ar condicionado",
                         "fr": "climatisation"},
    "heating": {"en": "Heating", "es": "calefacción", "pt": "aquecimento", "fr": "chauffage"},
    "washer": {"en": "A washing machine", "es": "lavadora", "pt": "máquina de lavar roupa", "fr": "lave-linge"},
    "dryer": {"en": "A dryer", "es": "secadora", "pt": "máquina de secar", "fr": "sèche-linge"},
    "dishwasher": {"en": "A dishwasher", "es": "lavavajillas", "pt": "máquina de lavar loiça",
                   "fr": "lave-vaisselle"},
    "kitchen": {"en": "A kitchen", "es": "cocina", "pt": "cozinha", "fr": "cuisine"},
    "tv": {"en": "A TV", "es": "televisión", "pt": "televisão", "fr": "télévision"},
    "elevator": {"en": "A lift", "es": "ascensor", "pt": "elevador", "fr": "ascenseur"},
    "crib": {"en": "A crib", "es": "cuna", "pt": "berço", "fr": "lit bébé"},
    "hair_dryer": {"en": "A hair dryer", "es": "secador de pelo", "pt": "secador de cabelo", "fr": "sèche-cheveux"},
    "balcony": {"en": "A balcony or terrace", "es": "balcón o terraza", "pt": "varanda ou terraço",
                "fr": "balcon ou terrasse"},
    "iron": {"en": "An iron", "es": "plancha", "pt": "ferro de engomar", "fr": "fer à repasser"},
    "bbq": {"en": "A barbecue", "es": "barbacoa", "pt": "churrasqueira", "fr": "barbecue"},
    "hot_tub": {"en": "A hot tub", "es": "jacuzzi", "pt": "jacuzzi", "fr": "jacuzzi"},
    "gym": {"en": "A gym", "es": "gimnasio", "pt": "ginásio", "fr": "salle de sport"},
    "workspace": {"en": "A workspace", "es": "zona de trabajo", "pt": "espaço de trabalho", "fr": "espace de travail"},
}


def say(lang: Language, key: str, **values: Any) -> str:
    """The sentence ``key`` in ``lang``, filled with ``values``."""
    return TEXTS[key][lang.code].format(**values)


def count(lang: Language, key: str, n: int) -> str:
    """``n`` things of :data:`FORMS` ``key`` as ``lang`` writes them: '3 nights', '1 noche'."""
    return plural(lang, n, FORMS[key][lang.code])


def date_range(lang: Language, check_in: dt.date, check_out: dt.date, today: dt.date | None = None) -> str:
    """'Fri 12 Mar – Mon 15 Mar (3 nights)', in ``lang``."""
    nights = count(lang, "nights", (check_out - check_in).days)
    return f"{day(lang, check_in, today)} – {day(lang, check_out, today)} ({nights})"


def duration(lang: Language, delta: dt.timedelta) -> str:
    """'2 days 3 hours', '5 hours', '45 minutes', 'less than a minute', in ``lang``."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return say(lang, "less_than_a_minute")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [count(lang, "days", days)] if days else []
    if hours:
        parts.append(count(lang, "hours", hours))
    if not days and rest // 60:
        parts.append(count(lang, "minutes", rest // 60))
    return " ".join(parts)
