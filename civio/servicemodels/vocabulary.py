"""The placeholders and flags the models may use, each with a sample value.

A closed vocabulary keeps the models consistent with each other (one name for one thing,
as the reference's ``<gg/mm/aaaa>``, ``<indirizzo>``, ``<causale>``…), and gives every slot a
realistic sample, long rather than short, so a rendered sample is a fair test of IO's
bounds. Values are what a sender puts in ``personalisation``: dates as ``gg/mm/aaaa``,
times as ``hh:mm``, amounts in euro with a comma (``12,50``), names of things without an
article (the texts are written so that a bare noun reads well in every language).
"""

from __future__ import annotations

# name -> sample value
PLACEHOLDERS: dict[str, str] = {
    # dates, times, numbers
    "data": "15/06/2026",
    "data_inizio": "01/06/2026",
    "data_fine": "30/06/2026",
    "data_scadenza": "31/07/2026",
    "data_appuntamento": "22/06/2026",
    "ora_appuntamento": "10:30",
    "ora_inizio": "14:00",
    "ora_fine": "08:00",
    "ora_apertura": "07:00",
    "ora_chiusura": "23:00",
    "numero_prenotazione": "2026/004512",
    "numero_protocollo": "PG/2026/0012345",
    "importo": "1.250,00",
    "numero_documento": "CA12345AB",
    "anno": "2026",
    "anno_scolastico": "2026/2027",
    "rata": "seconda rata",
    "data_riduzione": "20/06/2026",
    "importo_ridotto": "29,40",
    "ora_violazione": "18:45",
    "targa": "AB123CD",
    "tipo_graduatoria": "provvisoria",
    "credito_residuo": "4,20",
    "numero_verbale": "V/2026/0004512",
    # people, places, offices
    "nome": "Maria Grazia",
    "cognome": "Esposito Bianchi",
    "nome_comune": "San Giovanni in Persiceto",
    "indirizzo": "Via Giuseppe Garibaldi 118, piano terra, sportello 3",
    "ufficio": "Ufficio Servizi Demografici ed Elettorali",
    "nome_bambino": "Francesco Maria",
    "scuola": "Scuola primaria Gianni Rodari, plesso di via Roma",
    "zona": "quartiere Borgo Nuovo e frazioni lungo il torrente Lavino",
    "struttura": "Casa della Comunità di Borgo Panigale",
    # what a message is about
    "causale": "servizio di illuminazione votiva, anno 2026",
    "tipo_documento": "certificato di stato di famiglia",
    "oggetto_richiesta": "concessione di un loculo nel cimitero del capoluogo",
    "tipo_accesso": "accesso civico generalizzato",
    "organo": "Consiglio comunale",
    "oggetto_appuntamento": "voto domiciliare",
    "consultazione": "Elezioni europee e amministrative",
    "modalita_richiesta": "allo sportello dell'Ufficio elettorale o per PEC",
    "modalita_ritiro": "allo sportello di via Roma 4, dal lunedì al venerdì dalle 9 alle 13",
    "modalita_prenotazione": "online, al CUP telefonico 800 123 456 o in farmacia",
    "modalita_rimborso": "con un bonifico sul conto che ci hai indicato, entro 60 giorni",
    "programma_screening": "programma di screening del colon-retto",
    "campagna_vaccinale": "campagna antinfluenzale 2026/2027",
    "presidente_o_scrutatore": "scrutatore",
    "seggio": "sezione 12, Scuola primaria Gianni Rodari",
    "immobile": "Via Giuseppe Garibaldi 118, scala B, piano 3, interno 12",
    "tipo_violazione": "Sosta in zona a traffico limitato - art. 7 del Codice della Strada",
    "oggetto_bando": "concorso per 3 posti di istruttore amministrativo, categoria C",
    "tipo_prova": "prova scritta",
    "luogo_prova": "Aula magna, primo piano, edificio B, Via dei Mille 21",
    "emergenza": "allerta rossa per rischio idraulico e idrogeologico",
    "titolo_comunicazione": "Esercitazione di evacuazione nel quartiere Borgo Nuovo",
    "testo_comunicazione": (
        "Sabato dalle 9 alle 12 si svolge un'esercitazione: sentirai le sirene e vedrai i "
        "volontari in strada. Non devi fare nulla, ma puoi partecipare seguendo le indicazioni."
    ),
    # links (a CTA's action takes them after its scheme)
    "url_informazioni": "https://www.comune.esempio.it/servizi/elezioni/come-votare",
    "url_prenotazione": "https://prenotazioni.comune.esempio.it/appuntamenti/2026/004512",
    "url_richiesta": "https://sportello.comune.esempio.it/pratiche/PG-2026-0012345",
    "url_documento": "https://sportello.comune.esempio.it/documenti/PG-2026-0012345",
    "url_graduatoria": "https://www.comune.esempio.it/amministrazione/bandi/2026/graduatoria",
    "url_streaming": "https://www.comune.esempio.it/consiglio-comunale/diretta-streaming",
    "url_sso": "https://portale.asl.esempio.it/accesso",
}

# name -> what the block says when it is shown
FLAGS: dict[str, str] = {
    "trasporto_disabili": "the municipality offers free transport to the polls",
}


def sample_values(*, flags_on: bool) -> dict[str, str | bool]:
    """Every placeholder's sample, and every flag set to ``flags_on``."""
    values: dict[str, str | bool] = dict(PLACEHOLDERS)
    values.update(dict.fromkeys(FLAGS, flags_on))
    return values
