"""What the concierge understands, in each language it speaks: the phrases that signal each intent, the words that
tell a language apart, and the amenities travelers ask about.

Phrases are written as people write them; concierge.intents folds accents and case and stems every word with the
language's Snowball stemmer, on both sides, so one phrase covers its inflections ("arrive", "arriving", "arrived").
A word written ``=word`` must appear exactly as written (folded), unstemmed: "=trips" (a list) is not "trip".
Weights say how strongly a phrase signals its intent; phrases of one intent add up.
"""

from __future__ import annotations

Phrases = tuple[tuple[str, float], ...]

# --- intents, per language ----------------------------------------------------------------------

EN: dict[str, Phrases] = {
    "urgent": (
        ("fire", 4), ("on fire", 4), ("smell smoke", 4), ("smoke alarm", 4), ("flood", 4), ("flooding", 4),
        ("water leak", 4), ("leaking", 4), ("a leak", 4), ("gas leak", 4), ("smell gas", 4), ("smells of gas", 4),
        ("carbon monoxide", 4), ("injured", 4), ("injury", 4), ("bleeding", 4), ("ambulance", 4),
        ("emergency", 4), ("urgent", 4), ("medical", 2.5), ("hospital", 2.5), ("police", 2.5), ("break in", 4),
        ("need a doctor", 4),        ("call the police", 4), ("medical emergency", 4),
        ("broke in", 4), ("broken into", 4), ("burglar", 4), ("unsafe", 4), ("danger", 4), ("dangerous", 4),
        ("locked out", 4), ("lock out", 4), ("can not get in", 4), ("cannot get in", 4), ("key does not work", 4),
        ("code does not work", 4), ("door will not open", 4), ("door does not open", 4), ("no water", 4),
        ("no hot water", 4), ("no power", 4), ("no electricity", 4), ("power cut", 4), ("power outage", 4),
        ("blackout", 4), ("no heating", 4), ("heating is broken", 4), ("burst pipe", 4), ("pipe burst", 4),
        ("someone is hurt", 4), ("got hurt", 4), ("is hurt", 4), ("help me please", 2),
    ),
    "human": (
        ("human", 3), ("real person", 3), ("a person", 2), ("live person", 3), ("someone real", 3),
        ("talk to someone", 3), ("speak to someone", 3), ("speak with someone", 3), ("talk to somebody", 3),
        ("agent", 3), ("representative", 3), ("operator", 3), ("support staff", 3), ("customer service", 3),
        ("customer support", 3), ("staff member", 3), ("talk to a", 1), ("speak to a", 1), ("not a bot", 3),
        ("real human", 3), ("person please", 2), ("manager", 2), ("chat with someone", 3),
    ),
    "cancellation": (
        ("cancel", 3), ("cancel my", 1.5), ("cancellation", 2), ("call off", 2.5), ("want to cancel", 1.5),
        ("cancel the booking", 2), ("not coming", 2.5), ("can not come", 2.5),
    ),
    "cancellation_policy": (
        ("cancellation policy", 5), ("policy", 2.5), ("free cancellation", 4), ("cancel for free", 4),
        ("if i cancel", 4), ("refund policy", 5), ("cancellation terms", 5), ("cancellation rules", 5),
    ),
    "refund": (
        ("refund", 3), ("money back", 3), ("reimburse", 3), ("reimbursement", 3), ("charged twice", 2),
        ("get my money", 2.5), ("refunded", 3),
    ),
    "change": (
        ("change", 2.5), ("modify", 3), ("different dates", 3), ("other dates", 2), ("move my", 2.5),
        ("reschedule", 3), ("extend", 3), ("extra night", 3), ("add a guest", 3), ("add guests", 3),
        ("one more guest", 3), ("more guests", 2), ("shorten", 3), ("postpone", 3), ("switch dates", 3),
        ("change the dates", 1), ("an extra", 1.5), ("another night", 3), ("arrive a day", 2), ("stay longer", 3),
    ),
    "payment": (
        ("payment", 3), ("how do i pay", 4), ("pay now", 3), ("pay the", 2), ("pay for", 2), ("want to pay", 3),
        ("credit card", 3), ("debit card", 3), ("card", 1.5), ("invoice", 2.5), ("receipt", 2.5),
        ("i accept", 3), ("accept it", 3), ("want to accept", 3), ("how do i accept", 3), ("book it", 2.5),
        ("deposit", 2), ("charge", 1.5), ("charged", 1.5), ("accept the offer", 2), ("pay by", 3),
    ),
    "check_in_info": (
        ("door code", 4), ("key box", 4), ("keybox", 4), ("lockbox", 4), ("lock box", 4), ("access code", 4),
        ("entry code", 4), ("how do i get in", 4), ("how do we get in", 4), ("how to get in", 4),
        ("pick up the keys", 4), ("where are the keys", 4), ("how do i get the keys", 4),
        ("check in instructions", 5), ("instructions", 3), ("self check in", 4), ("code", 2), ("get inside", 3),
        ("collect the keys", 4), ("key code", 4), ("check in code", 4.5),
    ),
    "check_in": (
        ("check in", 2.5), ("arrive", 2), ("arrival", 2), ("get in", 1.5), ("early check", 2), ("key", 1.5),
        ("keys", 1.5), ("arriving", 2), ("get there", 1), ("get into", 2), ("move in", 1.5), ("let in", 1.5),
        ("=arrivals", 2.5),
        ("who is coming", 3),
    ),
    "check_out": (
        ("check out", 2.5), ("leave", 2), ("leaving", 2), ("departure", 2), ("depart", 2), ("vacate", 2),
        ("late check", 2), ("out by", 1.5), ("have to go", 1.5), ("got to leave", 2), ("be out", 1.5),
        ("=departures", 2.5), ("who leaves", 3),
    ),
    "address": (
        ("address", 3), ("where is", 1.5), ("location", 2.5), ("located", 2.5), ("directions", 2.5),
        ("how do i get", 2), ("how to get", 2), ("where exactly", 2), ("street", 2), ("find the place", 2),
        ("where are we staying", 3), ("where am i staying", 3), ("map", 1.5), ("where it is", 2),
    ),
    "guests": (
        ("guests", 2.5), ("guest", 2), ("how many people", 3), ("how many of us", 3), ("people", 1.5),
        ("persons", 2), ("party size", 3), ("how many", 1), ("headcount", 3), ("occupancy", 2),
    ),
    "max_guests": (
        ("maximum", 3), ("max", 3), ("capacity", 4), ("sleeps", 3), ("accommodate", 3), ("people can", 3),
        ("guests can", 3), ("how many can", 3), ("fit", 2), ("allowed guests", 3),
    ),
    "nights": (
        ("how many nights", 5), ("=nights", 2.5), ("how long is my stay", 4), ("length of stay", 4),
        ("how long is the stay", 4), ("number of nights", 5),
    ),
    "days_until": (
        ("how many days until", 5), ("how many days", 3), ("days until", 4), ("how long until", 4),
        ("how long before", 3), ("days left", 4), ("countdown", 4), ("how soon", 3), ("days to go", 4),
    ),
    "price": (
        ("how much did i pay", 5), ("did i pay", 4), ("what did i pay", 5), ("how much", 2), ("price", 3),
        ("cost", 3), ("total", 2), ("per night", 3), ("=nightly", 3), ("paid", 3), ("amount", 2), ("rate", 2),
        ("expensive", 2),
    ),
    "trips_list": (
        ("=trips", 2.5), ("=bookings", 2.5), ("=reservations", 2.5), ("=stays", 2), ("all my", 3), ("list", 2.5),
        ("every", 1.5), ("all of my", 3), ("upcoming trips", 2),
    ),
    "requests": (
        ("request", 2.5), ("requests", 2.5), ("request to book", 3), ("approve", 2.5), ("approved", 2.5),
        ("accept my", 1.5), ("host answer", 2), ("host respond", 2), ("host reply", 2), ("answered", 1.5),
        ("declined", 2), ("denied", 2), ("pending", 1.5), ("asked to book", 2.5), ("booking request", 3),
        ("hear back", 2), ("heard back", 2), ("been accepted", 2),
    ),
    "offers": (
        ("offer", 2.5), ("offers", 2.5), ("expire", 2.5), ("expires", 2.5), ("expiry", 2.5), ("expiring", 2.5),
        ("deadline", 2), ("how long do i have", 2.5), ("how much time", 1.5), ("quote", 2), ("deal", 1.5),
        ("still valid", 2), ("still available", 1.5),
    ),
    "next_trip": (
        ("trip", 2), ("booking", 1.5), ("reservation", 2), ("stay", 1.2), ("upcoming", 2), ("next", 1),
        ("booked", 1.5), ("my dates", 2), ("when am i", 1.5), ("holiday", 1.5), ("vacation", 1.5),
        ("itinerary", 2), ("travel", 1), ("dates", 1.5),
    ),
    "waiting_threads": (
        ("waiting for my reply", 5), ("waiting for a reply", 5), ("waiting for my answer", 5), ("unanswered", 4),
        ("inquiries", 3), ("inquiry", 3), ("who is waiting", 4), ("waiting for me", 4), ("need to reply", 4),
        ("need to answer", 4), ("unread", 3), ("=messages", 2), ("reply to", 1.5),
    ),
    "amenities": (
        ("amenities", 4), ("facilities", 4), ("what does it have", 3), ("equipment", 3), ("equipped", 3),
        ("features", 2), ("included", 1.5),
    ),
    "amenity": (("is there", 1.5), ("do you have", 1.5), ("does it have", 1.5), ("is there a", 0.5),
                ("can i use", 1.5), ("has it got", 1.5), ("do they have", 1.5)),
    "pets": (
        ("pets", 4), ("pet", 4), ("dog", 4), ("dogs", 4), ("cat", 4), ("animals", 4), ("pet friendly", 4),
        ("puppy", 4),
    ),
    "smoking": (("smoke", 3), ("smoking", 4), ("cigarette", 3), ("cigarettes", 3), ("vape", 3)),
    "bedrooms": (("bedrooms", 4), ("bedroom", 4), ("rooms", 2.5), ("beds", 2.5), ("bed", 2)),
    "bathrooms": (("bathrooms", 4), ("bathroom", 4), ("toilets", 3), ("toilet", 3), ("shower", 2), ("showers", 2)),
    "house_rules": (
        ("house rules", 5), ("rules", 4), ("quiet hours", 4), ("parties", 3), ("party", 3), ("noise", 2),
        ("allowed to", 1.5),
    ),
    "about": (
        ("about the property", 4), ("about the place", 4), ("about the apartment", 4), ("about the house", 4),
        ("about the flat", 4), ("describe", 4), ("description", 4), ("what is the place like", 4),
        ("what is it like", 3), ("tell me about the", 2),
    ),
    "help": (
        ("help", 2), ("what can you do", 3), ("what do you do", 3), ("options", 2), ("menu", 2),
        ("commands", 2), ("how does this work", 2.5), ("what can i ask", 3), ("capabilities", 2),
    ),
    "thanks": (
        ("thanks", 2), ("thank you", 2.5), ("cheers", 1.5), ("appreciate", 2), ("much obliged", 2),
        ("grateful", 2),
    ),
    "greeting": (
        ("hi", 1.2), ("hello", 1.5), ("hey", 1.2), ("good morning", 1.5), ("good evening", 1.5),
        ("good afternoon", 1.5), ("hiya", 1.5), ("howdy", 1.5), ("greetings", 1.5),
    ),
}

ES: dict[str, Phrases] = {
    "urgent": (
        ("fuego", 4), ("incendio", 4), ("huele a humo", 4), ("hay humo", 4), ("inundacion", 4), ("inundado", 4),
        ("fuga de agua", 4), ("fuga de gas", 4), ("huele a gas", 4), ("gotera", 4), ("herido", 4), ("herida", 4),
        ("sangrando", 4), ("ambulancia", 4), ("emergencia", 4), ("urgente", 4), ("medico", 2.5), ("hospital", 2.5),
        ("policia", 2.5), ("necesito un medico", 4), ("llamar a la policia", 4), ("robo", 4), ("han entrado", 4),
        ("ladron", 4), ("peligro", 4), ("peligroso", 4),
        ("no puedo entrar", 4), ("no podemos entrar", 4), ("me he quedado fuera", 4), ("nos hemos quedado fuera", 4),
        ("quedado fuera", 4), ("la llave no funciona", 4), ("el codigo no funciona", 4), ("no hay agua", 4),
        ("sin agua", 4), ("no hay luz", 4), ("sin luz", 4), ("no hay electricidad", 4), ("sin electricidad", 4),
        ("apagon", 4), ("no hay calefaccion", 4), ("sin calefaccion", 4), ("tuberia rota", 4),
        ("se ha roto una tuberia", 4), ("se ha hecho dano", 4), ("esta herido", 4),
    ),
    "human": (
        ("persona real", 3), ("una persona", 2.5), ("humano", 3), ("hablar con alguien", 3), ("agente", 3),
        ("atencion al cliente", 3), ("un representante", 3), ("no eres un bot", 3), ("hablar con una persona", 3),
        ("alguien del equipo", 3), ("encargado", 2),
    ),
    "cancellation": (
        ("cancelar", 3), ("cancelacion", 2), ("anular", 3), ("quiero cancelar", 1.5), ("no vamos a ir", 2.5),
        ("no podemos ir", 2.5),
    ),
    "cancellation_policy": (
        ("politica de cancelacion", 5), ("politica", 2.5), ("cancelacion gratuita", 4), ("cancelar gratis", 4),
        ("si cancelo", 4), ("condiciones de cancelacion", 5), ("politica de reembolso", 5),
    ),
    "refund": (("reembolso", 3), ("devolucion", 3), ("devolver el dinero", 3), ("recuperar mi dinero", 3),
               ("me cobraron dos veces", 2.5), ("reembolsar", 3),
               ("devuelvan", 3), ("devuelva", 3), ("devolverme", 3)),
    "change": (
        ("cambiar", 2.5), ("modificar", 3), ("otras fechas", 3), ("cambiar las fechas", 1), ("ampliar", 3),
        ("alargar", 3), ("una noche mas", 3), ("noche extra", 3), ("anadir un huesped", 3), ("mas huespedes", 2),
        ("una persona mas", 3), ("acortar", 3), ("posponer", 3), ("aplazar", 3), ("quedarnos mas", 3),
    ),
    "payment": (
        ("=pago", 3), ("=pagar", 3), ("como pago", 4), ("tarjeta de credito", 3), ("tarjeta", 1.5), ("factura", 2.5),
        ("recibo", 2.5), ("aceptar la oferta", 2), ("acepto", 3), ("quiero aceptar", 3), ("deposito", 2),
        ("cobro", 1.5), ("cobrado", 1.5),
    ),
    "check_in_info": (
        ("codigo de la puerta", 4), ("caja de llaves", 4), ("cajetin", 4), ("codigo de acceso", 4),
        ("como entro", 4), ("como entramos", 4), ("como se entra", 4), ("recoger las llaves", 4),
        ("donde estan las llaves", 4), ("codigo de entrada", 4.5), ("instrucciones", 3),
        ("instrucciones de llegada", 5), ("codigo", 2),
    ),
    "check_in": (
        ("check in", 2.5), ("llegada", 2.5), ("llegar", 2), ("llego", 2), ("llegamos", 2), ("entrada", 2),
        ("llaves", 1.5), ("hora de entrada", 3), ("quien llega", 3), ("=llegadas", 2.5), ("entrar", 1.5),
    ),
    "check_out": (
        ("check out", 2.5), ("salida", 2.5), ("salir", 2), ("dejar el piso", 2.5), ("dejar la casa", 2.5),
        ("irnos", 2), ("marcharnos", 2), ("hora de salida", 3), ("quien sale", 3), ("quien se va", 3),
        ("=salidas", 2.5),
    ),
    "address": (
        ("direccion", 3), ("donde esta", 2), ("ubicacion", 2.5), ("ubicado", 2.5), ("como llego", 2),
        ("como llegar", 2), ("calle", 2), ("mapa", 1.5), ("donde nos alojamos", 3), ("donde me alojo", 3),
    ),
    "guests": (
        ("huespedes", 2.5), ("huesped", 2), ("cuantas personas", 3), ("cuantos somos", 3), ("personas", 1.5),
        ("cuantos", 1),
    ),
    "max_guests": (
        ("maximo", 3), ("capacidad", 4), ("caben", 3), ("cuantas personas caben", 5), ("pueden alojarse", 3),
        ("pueden dormir", 3),
    ),
    "nights": (("cuantas noches", 5), ("=noches", 2.5), ("duracion de la estancia", 4), ("cuanto dura", 3)),
    "days_until": (("cuantos dias faltan", 5), ("cuantos dias", 3), ("dias faltan", 4), ("cuanto falta", 4),
                   ("faltan", 2)),
    "price": (
        ("cuanto pague", 5), ("cuanto he pagado", 5), ("que pague", 4), ("pagado", 3), ("precio", 3), ("coste", 3),
        ("costo", 3), ("cuanto cuesta", 3), ("total", 2), ("por noche", 3), ("importe", 2), ("tarifa", 2),
    ),
    "trips_list": (
        ("=viajes", 2.5), ("=reservas", 2.5), ("todas mis", 3), ("todos mis", 3), ("lista", 2.5), ("=mis", 1),
    ),
    "requests": (
        ("solicitud", 2.5), ("solicitudes", 2.5), ("solicitud de reserva", 3), ("aprobado", 2.5),
        ("aprobada", 2.5), ("aprobar", 2.5), ("aceptado", 2), ("aceptada", 2), ("rechazado", 2), ("rechazada", 2),
        ("pendiente", 1.5), ("respondido", 1.5), ("el anfitrion", 1), ("peticion", 2.5),
    ),
    "offers": (
        ("oferta", 2.5), ("ofertas", 2.5), ("caduca", 2.5), ("caducar", 2.5), ("vence", 2.5), ("expira", 2.5),
        ("plazo", 2), ("cuanto tiempo tengo", 2.5), ("sigue valida", 2), ("presupuesto", 2),
    ),
    "next_trip": (
        ("viaje", 2), ("reserva", 2), ("estancia", 1.5), ("proximo", 1.5), ("proxima", 1.5), ("reservado", 1.5),
        ("mis fechas", 2), ("vacaciones", 1.5), ("fechas", 1.5), ("cuando voy", 2),
    ),
    "waiting_threads": (
        ("esperando mi respuesta", 5), ("esperando respuesta", 5), ("sin responder", 4), ("sin contestar", 4),
        ("consultas", 3), ("consulta", 3), ("quien espera", 4), ("tengo que responder", 4), ("=mensajes", 2),
        ("no leidos", 3),
    ),
    "amenities": (("comodidades", 4), ("servicios", 3), ("equipamiento", 4), ("que tiene", 2.5),
                  ("equipado", 3), ("que incluye", 2.5)),
    "amenity": (("=hay", 1.5), ("=tiene", 1.5), ("=teneis", 1.5), ("=tienen", 1.5), ("puedo usar", 1.5)),
    "pets": (("mascota", 4), ("mascotas", 4), ("perro", 4), ("perros", 4), ("gato", 4), ("animales", 4)),
    "smoking": (("fumar", 4), ("fumo", 3), ("cigarrillo", 3), ("cigarro", 3), ("fumadores", 4)),
    "bedrooms": (("habitaciones", 4), ("dormitorios", 4), ("habitacion", 3), ("dormitorio", 3), ("cuartos", 3),
                 ("camas", 2.5)),
    "bathrooms": (("banos", 4), ("bano", 4), ("aseo", 3), ("aseos", 3), ("ducha", 2)),
    "house_rules": (("normas", 4), ("reglas", 4), ("normas de la casa", 5), ("fiestas", 3), ("fiesta", 3),
                    ("ruido", 2), ("horas de silencio", 4)),
    "about": (("como es", 3), ("describe", 4), ("descripcion", 4), ("sobre el apartamento", 4),
              ("sobre la casa", 4), ("sobre el piso", 4), ("hablame de", 3), ("cuentame de", 3)),
    "help": (("ayuda", 2), ("que puedes hacer", 3), ("que sabes hacer", 3), ("opciones", 2),
             ("que puedo preguntar", 3), ("como funciona", 2.5)),
    "thanks": (("gracias", 2.5), ("muchas gracias", 2.5), ("te lo agradezco", 2), ("mil gracias", 2.5)),
    "greeting": (("hola", 1.5), ("buenos dias", 1.5), ("buenas tardes", 1.5), ("buenas noches", 1.5),
                 ("buenas", 1.2), ("saludos", 1.2)),
}

PT: dict[str, Phrases] = {
    "urgent": (
        ("fogo", 4), ("incendio", 4), ("cheira a fumo", 4), ("cheiro a fumo", 4), ("cheiro de fumaca", 4),
        ("fumaca", 3), ("inundacao", 4), ("inundado", 4), ("inundada", 4), ("fuga de agua", 4),
        ("vazamento", 4), ("fuga de gas", 4), ("cheira a gas", 4), ("cheiro a gas", 4), ("cheiro de gas", 4),
        ("ferido", 4), ("ferida", 4), ("sangrar", 4), ("sangrando", 4), ("ambulancia", 4), ("emergencia", 4),
        ("urgente", 4), ("medico", 2.5), ("hospital", 2.5), ("policia", 2.5), ("assalto", 4),
        ("preciso de um medico", 4), ("chamar a policia", 4), ("arrombaram", 4),
        ("ladrao", 4), ("perigo", 4), ("perigoso", 4), ("nao consigo entrar", 4), ("nao conseguimos entrar", 4),
        ("fiquei trancado", 4), ("ficamos trancados", 4), ("ficamos fora", 4), ("fiquei fora", 4),
        ("a chave nao funciona", 4), ("o codigo nao funciona", 4), ("nao ha agua", 4), ("sem agua", 4),
        ("nao tem agua", 4), ("nao ha luz", 4), ("sem luz", 4), ("sem eletricidade", 4), ("sem energia", 4),
        ("falta de luz", 4), ("apagao", 4), ("sem aquecimento", 4), ("cano rebentou", 4), ("cano estourou", 4),
        ("se magoou", 4), ("esta ferido", 4), ("infiltracao", 3),
    ),
    "human": (
        ("pessoa real", 3), ("uma pessoa", 2.5), ("humano", 3), ("falar com alguem", 3), ("agente", 3),
        ("atendimento", 3), ("apoio ao cliente", 3), ("atendente", 3), ("nao es um bot", 3),
        ("falar com uma pessoa", 3), ("alguem da equipa", 3), ("alguem da equipe", 3), ("gerente", 2),
    ),
    "cancellation": (
        ("cancelar", 3), ("cancelamento", 2), ("anular", 3), ("quero cancelar", 1.5), ("nao vamos", 2),
        ("nao podemos ir", 2.5),
    ),
    "cancellation_policy": (
        ("politica de cancelamento", 5), ("politica", 2.5), ("cancelamento gratuito", 4), ("cancelar de graca", 4),
        ("se eu cancelar", 4), ("se cancelar", 4), ("condicoes de cancelamento", 5), ("politica de reembolso", 5),
    ),
    "refund": (("reembolso", 3), ("devolucao", 3), ("devolver o dinheiro", 3), ("meu dinheiro de volta", 3),
               ("cobraram duas vezes", 2.5), ("reembolsar", 3), ("estorno", 3)),
    "change": (
        ("mudar", 2.5), ("alterar", 3), ("alteracao", 3), ("trocar", 2.5), ("outras datas", 3), ("prolongar", 3),
        ("estender", 3), ("mais uma noite", 3), ("noite extra", 3), ("adicionar um hospede", 3),
        ("mais hospedes", 2), ("mais uma pessoa", 3), ("encurtar", 3), ("adiar", 3), ("remarcar", 3),
    ),
    "payment": (
        ("pagamento", 3), ("=pagar", 3), ("como pago", 4), ("cartao de credito", 3), ("cartao", 1.5),
        ("fatura", 2.5), ("recibo", 2.5), ("aceitar a oferta", 2), ("aceito", 3), ("quero aceitar", 3),
        ("deposito", 2), ("cobranca", 1.5), ("sinal", 1.5),
    ),
    "check_in_info": (
        ("codigo da porta", 4), ("caixa de chaves", 4), ("cofre de chaves", 4), ("codigo de acesso", 4),
        ("como entro", 4), ("como entramos", 4), ("como se entra", 4), ("buscar as chaves", 4),
        ("levantar as chaves", 4), ("onde estao as chaves", 4), ("codigo de entrada", 4.5),
        ("instrucoes", 3), ("instrucoes de chegada", 5),
        ("instrucoes de check in", 5), ("codigo", 2),
    ),
    "check_in": (
        ("check in", 2.5), ("chegada", 2.5), ("chegar", 2), ("chego", 2), ("chegamos", 2), ("entrada", 2),
        ("chaves", 1.5), ("hora de entrada", 3), ("quem chega", 3), ("=chegadas", 2.5), ("entrar", 1.5),
    ),
    "check_out": (
        ("check out", 2.5), ("saida", 2.5), ("sair", 2), ("deixar o apartamento", 2.5), ("deixar a casa", 2.5),
        ("ir embora", 2), ("hora de saida", 3), ("quem sai", 3), ("=saidas", 2.5),
    ),
    "address": (
        ("endereco", 3), ("morada", 3), ("onde fica", 2.5), ("onde e", 1.5), ("localizacao", 2.5),
        ("localizado", 2.5), ("como chego", 2), ("como chegar", 2), ("rua", 2), ("mapa", 1.5),
        ("onde vamos ficar", 3), ("onde fico", 3),
    ),
    "guests": (
        ("hospedes", 2.5), ("hospede", 2), ("quantas pessoas", 3), ("quantos somos", 3), ("pessoas", 1.5),
        ("quantos", 1),
    ),
    "max_guests": (
        ("maximo", 3), ("capacidade", 4), ("cabem", 3), ("quantas pessoas cabem", 5), ("podem ficar", 3),
        ("podem dormir", 3), ("lotacao", 4),
    ),
    "nights": (("quantas noites", 5), ("=noites", 2.5), ("duracao da estadia", 4), ("quanto tempo dura", 3)),
    "days_until": (("quantos dias faltam", 5), ("quantos dias", 3), ("dias faltam", 4), ("quanto falta", 4),
                   ("faltam", 2)),
    "price": (
        ("quanto paguei", 5), ("quanto eu paguei", 5), ("o que paguei", 4), ("pago", 2), ("paguei", 3),
        ("preco", 3), ("custo", 3), ("quanto custa", 3), ("total", 2), ("por noite", 3), ("valor", 2.5),
        ("tarifa", 2),
    ),
    "trips_list": (
        ("=viagens", 2.5), ("=reservas", 2.5), ("todas as minhas", 3), ("todas minhas", 3), ("lista", 2.5),
        ("=minhas", 1), ("=meus", 1),
    ),
    "requests": (
        ("pedido", 2.5), ("pedidos", 2.5), ("pedido de reserva", 3), ("solicitacao", 2.5), ("aprovado", 2.5),
        ("aprovada", 2.5), ("aprovar", 2.5), ("aceite", 2), ("aceito pelo anfitriao", 2), ("recusado", 2),
        ("recusada", 2), ("pendente", 1.5), ("respondeu", 1.5), ("o anfitriao", 1),
    ),
    "offers": (
        ("oferta", 2.5), ("ofertas", 2.5), ("proposta", 2.5), ("expira", 2.5), ("expirar", 2.5), ("vence", 2.5),
        ("prazo", 2), ("quanto tempo tenho", 2.5), ("ainda e valida", 2), ("orcamento", 2),
    ),
    "next_trip": (
        ("viagem", 2), ("reserva", 2), ("estadia", 1.5), ("proxima", 1.5), ("proximo", 1.5), ("reservado", 1.5),
        ("minhas datas", 2), ("ferias", 1.5), ("datas", 1.5), ("quando vou", 2),
    ),
    "waiting_threads": (
        ("a espera da minha resposta", 5), ("esperando resposta", 5), ("a espera de resposta", 5),
        ("sem resposta", 4), ("por responder", 4), ("consultas", 3), ("quem esta a espera", 4),
        ("quem esta esperando", 4), ("tenho de responder", 4), ("tenho que responder", 4), ("=mensagens", 2),
        ("nao lidas", 3),
    ),
    "amenities": (("comodidades", 4), ("equipamentos", 4), ("servicos", 3), ("o que tem", 2.5),
                  ("equipado", 3), ("o que inclui", 2.5)),
    "amenity": (("=tem", 1.5), ("=ha", 1.5), ("=existe", 1.5), ("posso usar", 1.5), ("voces tem", 1.5)),
    "pets": (("animais", 4), ("animal de estimacao", 4), ("animais de estimacao", 4), ("cao", 4), ("caes", 4),
             ("cachorro", 4), ("gato", 4), ("pet", 4), ("pets", 4)),
    "smoking": (("fumar", 4), ("fumo", 3), ("cigarro", 3), ("fumadores", 4), ("fumantes", 4)),
    "bedrooms": (("quartos", 4), ("quarto", 3), ("dormitorios", 4), ("camas", 2.5)),
    "bathrooms": (("casas de banho", 4), ("casa de banho", 4), ("banheiros", 4), ("banheiro", 4), ("wc", 3),
                  ("chuveiro", 2)),
    "house_rules": (("regras", 4), ("regras da casa", 5), ("festas", 3), ("festa", 3), ("barulho", 2),
                    ("horas de silencio", 4), ("normas", 4)),
    "about": (("como e", 2.5), ("descreve", 4), ("descricao", 4), ("sobre o apartamento", 4), ("sobre a casa", 4),
              ("fala me de", 3), ("fale me sobre", 3), ("conta me sobre", 3)),
    "help": (("ajuda", 2), ("o que podes fazer", 3), ("o que voce pode fazer", 3), ("opcoes", 2),
             ("o que posso perguntar", 3), ("como funciona", 2.5)),
    "thanks": (("obrigado", 2.5), ("obrigada", 2.5), ("muito obrigado", 2.5), ("muito obrigada", 2.5),
               ("agradeco", 2), ("valeu", 2)),
    "greeting": (("ola", 1.5), ("oi", 1.2), ("bom dia", 1.5), ("boa tarde", 1.5), ("boa noite", 1.5),
                 ("saudacoes", 1.2)),
}

FR: dict[str, Phrases] = {
    "urgent": (
        ("feu", 4), ("incendie", 4), ("ca sent la fumee", 4), ("odeur de fumee", 4), ("de la fumee", 4),
        ("inondation", 4), ("inonde", 4), ("inondee", 4), ("fuite d eau", 4), ("une fuite", 4), ("fuite de gaz", 4),
        ("odeur de gaz", 4), ("ca sent le gaz", 4), ("blesse", 4), ("blessee", 4), ("blessure", 4), ("saigne", 4),
        ("ambulance", 4), ("urgence", 4), ("urgent", 4), ("medecin", 2.5), ("hopital", 2.5), ("police", 2.5),
        ("besoin d un medecin", 4), ("appeler la police", 4),
        ("cambriolage", 4), ("cambriole", 4), ("voleur", 4), ("danger", 4), ("dangereux", 4),
        ("je ne peux pas entrer", 4), ("nous ne pouvons pas entrer", 4), ("on ne peut pas entrer", 4),
        ("enferme dehors", 4), ("bloque dehors", 4), ("bloques dehors", 4), ("la cle ne marche pas", 4),
        ("le code ne marche pas", 4), ("le code ne fonctionne pas", 4), ("pas d eau", 4), ("plus d eau", 4),
        ("pas d electricite", 4), ("plus d electricite", 4), ("pas de courant", 4), ("coupure de courant", 4),
        ("panne de courant", 4), ("pas de chauffage", 4), ("plus de chauffage", 4), ("tuyau a eclate", 4),
        ("s est blesse", 4), ("est blesse", 4),
    ),
    "human": (
        ("personne reelle", 3), ("une vraie personne", 3), ("un humain", 3), ("humain", 3),
        ("parler a quelqu un", 3), ("agent", 3), ("service client", 3), ("conseiller", 3), ("un responsable", 2.5),
        ("pas un robot", 3), ("parler a une personne", 3), ("quelqu un de l equipe", 3),
    ),
    "cancellation": (
        ("annuler", 3), ("annulation", 2), ("je veux annuler", 1.5), ("nous ne venons plus", 2.5),
        ("on ne vient plus", 2.5),
    ),
    "cancellation_policy": (
        ("politique d annulation", 5), ("politique", 2.5), ("annulation gratuite", 4), ("annuler gratuitement", 4),
        ("si j annule", 4), ("conditions d annulation", 5), ("politique de remboursement", 5),
    ),
    "refund": (("remboursement", 3), ("rembourser", 3), ("rembourse", 3), ("recuperer mon argent", 3),
               ("debite deux fois", 2.5)),
    "change": (
        ("changer", 2.5), ("modifier", 3), ("modification", 3), ("d autres dates", 3), ("prolonger", 3),
        ("une nuit de plus", 3), ("nuit supplementaire", 3), ("ajouter un voyageur", 3), ("ajouter une personne", 3),
        ("plus de voyageurs", 2), ("raccourcir", 3), ("reporter", 3), ("decaler", 3),
    ),
    "payment": (
        ("paiement", 3), ("=payer", 3), ("comment payer", 4), ("carte de credit", 3), ("carte bancaire", 3),
        ("carte", 1.5), ("facture", 2.5), ("recu", 2.5), ("accepter l offre", 2), ("j accepte", 3),
        ("je veux accepter", 3), ("acompte", 2), ("caution", 2), ("prelevement", 1.5),
    ),
    "check_in_info": (
        ("code de la porte", 4), ("boite a cles", 4), ("boite a cle", 4), ("code d acces", 4), ("digicode", 4),
        ("comment entrer", 4), ("comment on entre", 4), ("comment je rentre", 4), ("recuperer les cles", 4),
        ("ou sont les cles", 4), ("code d entree", 4.5), ("instructions", 3), ("instructions d arrivee", 5),
        ("code", 2),
    ),
    "check_in": (
        ("check in", 2.5), ("arrivee", 2.5), ("arriver", 2), ("j arrive", 2), ("nous arrivons", 2),
        ("cles", 1.5), ("heure d arrivee", 3), ("qui arrive", 3), ("=arrivees", 2.5), ("entrer", 1.5),
    ),
    "check_out": (
        ("check out", 2.5), ("depart", 2.5), ("partir", 2), ("quitter", 2.5), ("liberer", 2.5),
        ("heure de depart", 3), ("qui part", 3), ("=departs", 2.5),
    ),
    "address": (
        ("adresse", 3), ("ou est", 2), ("ou se trouve", 3), ("emplacement", 2.5), ("situe", 2.5),
        ("comment y aller", 2.5), ("comment aller", 2), ("rue", 2), ("plan", 1.5), ("ou logeons nous", 3),
        ("ou est ce qu on loge", 3),
    ),
    "guests": (
        ("voyageurs", 2.5), ("voyageur", 2), ("combien de personnes", 3), ("combien sommes nous", 3),
        ("personnes", 1.5), ("combien", 1), ("invites", 2),
    ),
    "max_guests": (
        ("maximum", 3), ("capacite", 4), ("combien de personnes peuvent", 5), ("peut accueillir", 4),
        ("peuvent dormir", 3), ("couchages", 3),
    ),
    "nights": (("combien de nuits", 5), ("=nuits", 2.5), ("duree du sejour", 4), ("combien de temps dure", 3)),
    "days_until": (("combien de jours avant", 5), ("combien de jours", 3), ("jours avant", 3),
                   ("dans combien de temps", 4), ("encore combien", 3)),
    "price": (
        ("combien j ai paye", 5), ("combien ai je paye", 5), ("j ai paye", 4), ("paye", 2.5), ("prix", 3),
        ("cout", 3), ("combien coute", 3), ("total", 2), ("par nuit", 3), ("montant", 2.5), ("tarif", 2),
    ),
    "trips_list": (
        ("=voyages", 2.5), ("=reservations", 2.5), ("=sejours", 2), ("toutes mes", 3), ("tous mes", 3),
        ("liste", 2.5), ("=mes", 1),
    ),
    "requests": (
        ("demande", 2.5), ("demandes", 2.5), ("demande de reservation", 3), ("approuve", 2.5),
        ("approuvee", 2.5), ("accepte", 2), ("acceptee", 2), ("refuse", 2), ("refusee", 2), ("en attente", 1.5),
        ("repondu", 1.5), ("l hote", 1),
    ),
    "offers": (
        ("offre", 2.5), ("offres", 2.5), ("proposition", 2.5), ("expire", 2.5), ("expirer", 2.5),
        ("date limite", 2), ("combien de temps ai je", 2.5), ("toujours valable", 2), ("devis", 2),
    ),
    "next_trip": (
        ("voyage", 2), ("reservation", 2), ("sejour", 1.5), ("prochain", 1.5), ("prochaine", 1.5),
        ("reserve", 1.5), ("mes dates", 2), ("vacances", 1.5), ("dates", 1.5), ("quand est ce que je pars", 2),
    ),
    "waiting_threads": (
        ("attendent ma reponse", 5), ("attend ma reponse", 5), ("en attente de reponse", 5), ("sans reponse", 4),
        ("non repondu", 4), ("qui attend", 4), ("je dois repondre", 4), ("=messages", 2), ("non lus", 3),
    ),
    "amenities": (("equipements", 4), ("commodites", 4), ("services", 3), ("qu est ce qu il y a", 2.5),
                  ("equipe", 2.5), ("ce qui est inclus", 2.5)),
    "amenity": (("y a t il", 1.5), ("est ce qu il y a", 1.5), ("il y a", 1.5), ("avez vous", 1.5),
                ("je peux utiliser", 1.5)),
    "pets": (("animaux", 4), ("animal", 4), ("chien", 4), ("chiens", 4), ("chat", 4), ("chats", 4),
             ("animaux de compagnie", 4)),
    "smoking": (("fumer", 4), ("fumeur", 4), ("fumeurs", 4), ("cigarette", 3), ("cigarettes", 3)),
    "bedrooms": (("chambres", 4), ("chambre", 3), ("lits", 2.5), ("lit", 2)),
    "bathrooms": (("salle de bain", 4), ("salles de bain", 4), ("salle de bains", 4), ("toilettes", 3),
                  ("douche", 2), ("wc", 3)),
    "house_rules": (("reglement", 4), ("regles", 4), ("reglement interieur", 5), ("fetes", 3), ("fete", 3),
                    ("bruit", 2), ("heures de silence", 4)),
    "about": (("comment est", 3), ("decris", 4), ("description", 4), ("parle moi de", 3), ("a propos de", 3),
              ("sur l appartement", 4), ("sur la maison", 4)),
    "help": (("aide", 2), ("que peux tu faire", 3), ("que pouvez vous faire", 3), ("options", 2),
             ("que puis je demander", 3), ("comment ca marche", 2.5)),
    "thanks": (("merci", 2.5), ("merci beaucoup", 2.5), ("je vous remercie", 2.5), ("merci bien", 2.5)),
    "greeting": (("bonjour", 1.5), ("salut", 1.2), ("bonsoir", 1.5), ("coucou", 1.2)),
}

LEXICONS: dict[str, dict[str, Phrases]] = {"en": EN, "es": ES, "pt": PT, "fr": FR}

# --- telling the languages apart ----------------------------------------------------------------

# Common words of each language (folded); a word several languages share counts for each, split between them.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the a an is are my i what when where how do does can there we you it to of for and in on at time please "
        "hi hello have will with this that me our your any did was be get has who which why much many".split()
    ),
    "es": frozenset(
        "el la los las un una es mi mis que cuando donde como hay puedo tengo hola gracias por favor para con del "
        "al y en esta estan nuestro nuestra cual cuantos cuantas hora quiero necesito tiene se lo le muy buenos "
        "dias me nos su sus hasta desde ya pero este de a".split()
    ),
    "pt": frozenset(
        "o os as um uma e meu minha meus minhas que quando onde como tem ha posso tenho ola obrigado obrigada "
        "por favor para com do da dos das no na nos nas em qual quantos quantas hora horas quero preciso voce "
        "bom dia esta estao nosso nossa me se ja mas ou isso este vou eu de a".split()
    ),
    "fr": frozenset(
        "le la les un une est mon ma mes que quand ou comment il y a je peux bonjour merci pour avec du des au aux "
        "et en dans quel quelle quels combien heure veux besoin vous nous notre c qu l d j n s est ce plait "
        "salut pas ne on sont suis".split()
    ),
}
# Letters only some of the languages write (compared before accents are folded), with their weight.
LETTERS: dict[str, dict[str, float]] = {
    "es": {"ñ": 2, "¿": 2, "¡": 2, "á": 0.5, "í": 0.5, "ó": 0.5, "ú": 0.5, "é": 0.3},
    "pt": {"ã": 2, "õ": 2, "ç": 1, "ê": 1, "â": 1, "á": 0.5, "í": 0.5, "ó": 0.5, "ú": 0.5, "à": 0.5, "é": 0.3},
    "fr": {"è": 2, "ù": 2, "œ": 2, "î": 2, "ï": 2, "û": 2, "ë": 2, "ç": 1, "ê": 1, "â": 1, "à": 0.5, "é": 0.3},
}

# Chat shorthand and common misspellings, replaced word by word (folded) before matching.
SHORTHAND: dict[str, dict[str, str]] = {
    "en": {
        "u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "ppl": "people", "hw": "how",
        "wen": "when", "whn": "when", "wat": "what", "wht": "what", "whats": "what is", "whens": "when is",
        "wheres": "where is", "hows": "how is", "wanna": "want to", "gotta": "got to", "gonna": "going to",
        "im": "i am", "cant": "can not", "cannot": "can not", "dont": "do not", "didnt": "did not",
        "doesnt": "does not", "wont": "will not", "isnt": "is not", "thx": "thanks", "ty": "thanks",
        "tnx": "thanks", "tmrw": "tomorrow", "tmr": "tomorrow", "rn": "right now", "bc": "because", "w": "with",
        "checkin": "check in", "checkout": "check out", "chekin": "check in", "chekout": "check out",
        "checkinn": "check in", "res": "reservation", "rez": "reservation", "hi5": "hi", "yo": "hey",
        "wifi": "wifi", "a/c": "ac",
    },
    "es": {"q": "que", "xq": "porque", "pq": "porque", "tb": "tambien", "k": "que", "checkin": "check in",
           "checkout": "check out", "xfa": "por favor", "porfa": "por favor"},
    "pt": {"vc": "voce", "q": "que", "pq": "porque", "tb": "tambem", "tbm": "tambem", "checkin": "check in",
           "checkout": "check out", "obg": "obrigado", "pfv": "por favor", "pf": "por favor", "td": "tudo"},
    "fr": {"stp": "s il te plait", "svp": "s il vous plait", "checkin": "check in", "checkout": "check out",
           "qd": "quand", "pr": "pour", "bjr": "bonjour", "mrc": "merci", "cb": "combien"},
}

# Ordinary words near an intent's words that are never corrected into them ("floor" is not "flood").
ORDINARY: dict[str, frozenset[str]] = {
    "en": frozenset("floor flour door fine five hire wire fired river leave least party ready eight water after "
                    "later lease fleet float sleep sheet heating beating center".split()),
    "es": frozenset("fuera fuimos salsa salon cama casa cosa calle".split()),
    "pt": frozenset("fora fomos sala cama casa coisa".split()),
    "fr": frozenset("fait faire fois feux fee cle".split()),
}

# Today and tomorrow, as each language says them (folded), for "who leaves today".
DAY_WORDS: dict[str, str] = {
    "today": "today", "tonight": "today", "tomorrow": "tomorrow", "hoy": "today", "manana": "tomorrow",
    "hoje": "today", "amanha": "tomorrow", "aujourd": "today", "aujourdhui": "today", "demain": "tomorrow",
    "ce soir": "today",
}

# --- amenities ------------------------------------------------------------------------------------

# concept → (how travelers ask for it, in every language, folded; how a listing names it, in English and in the
# other languages, folded). The weight of a concept word decides whether it alone asks about the amenity.
AMENITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], float]] = {
    "wifi": (("wifi", "wi fi", "internet", "wireless", "wlan", "red wifi", "rede wifi", "connexion internet"),
             ("wifi", "wi fi", "internet", "wireless"), 3),
    "parking": (("parking", "park", "parking space", "car park", "garage", "aparcamiento", "aparcar",
                 "estacionamiento", "estacionar", "estacionamento", "garagem", "stationnement", "se garer",
                 "parque de estacionamento", "lugar de estacionamento", "plaza de garaje"),
                ("parking", "garage", "carport", "estacionamiento", "aparcamiento", "estacionamento", "garagem",
                 "stationnement"), 3),
    "pool": (("pool", "swimming pool", "swimming", "piscina", "piscine"), ("pool", "piscina", "piscine"), 3),
    "air_conditioning": (("air conditioning", "aircon", "ac", "a c", "air conditioner", "aire acondicionado",
                          "ar condicionado", "climatisation", "clim", "climatise", "climatizado", "climatizacion",
                          "climatizacao"),
                         ("air conditioning", "air conditioner", "ac", "aircon", "aire acondicionado",
                          "ar condicionado", "climatisation"), 3),
    "heating": (("heating", "heater", "calefaccion", "aquecimento", "chauffage", "radiator", "radiador",
                 "radiateur"),
                ("heating", "heater", "calefaccion", "aquecimento", "chauffage"), 3),
    "washer": (("washer", "washing machine", "laundry", "lavadora", "maquina de lavar", "maquina de lavar roupa",
                "lave linge", "machine a laver", "lavanderia", "lavandaria", "buanderie"),
               ("washer", "washing machine", "laundry", "lavadora", "maquina de lavar", "lave linge"), 3),
    "dryer": (("dryer", "tumble dryer", "secadora", "maquina de secar", "seche linge"),
              ("dryer", "secadora", "seche linge"), 2),
    "dishwasher": (("dishwasher", "lavavajillas", "maquina de lavar louca", "lava loucas", "lave vaisselle"),
                   ("dishwasher", "lavavajillas", "lave vaisselle"), 1.5),
    "kitchen": (("kitchen", "cook", "cooking", "cocina", "cocinar", "cozinha", "cozinhar", "cuisine",
                 "cuisiner"),
                ("kitchen", "kitchenette", "cocina", "cozinha", "cuisine"), 2.5),
    "tv": (("tv", "television", "televisor", "televisao", "netflix"), ("tv", "television"), 2),
    "elevator": (("elevator", "lift", "ascensor", "elevador", "ascenseur"),
                 ("elevator", "lift", "ascensor", "elevador", "ascenseur"), 3),
    "crib": (("crib", "cot", "baby bed", "cuna", "berco", "lit bebe", "lit parapluie"),
             ("crib", "cot", "cuna", "berco"), 2.5),
    "hair_dryer": (("hair dryer", "hairdryer", "secador", "secador de pelo", "secador de cabelo",
                    "seche cheveux"),
                   ("hair dryer", "hairdryer", "secador", "seche cheveux"), 3),
    "balcony": (("balcony", "terrace", "balcon", "terraza", "varanda", "terraco", "terrasse"),
                ("balcony", "terrace", "patio", "balcon", "terraza", "varanda", "terrasse"), 2.5),
    "iron": (("iron", "ironing", "plancha", "ferro de engomar", "ferro de passar", "fer a repasser"),
             ("iron", "plancha", "fer a repasser"), 2),
    "bbq": (("bbq", "barbecue", "grill", "barbacoa", "churrasqueira", "churrasco"),
            ("bbq", "barbecue", "grill", "barbacoa", "churrasqueira"), 3),
    "hot_tub": (("hot tub", "jacuzzi", "spa"), ("hot tub", "jacuzzi", "spa"), 3),
    "gym": (("gym", "gimnasio", "ginasio", "salle de sport"), ("gym", "fitness"), 3),
    "workspace": (("workspace", "desk", "escritorio", "secretaria", "bureau"),
                  ("workspace", "desk", "escritorio", "bureau"), 2),
}
