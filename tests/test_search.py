"""Issue search (docs/read-api.md, "Search grammar"): the grammar itself, every
search key through GET /api/v1/issues?query=, counts scoped to event terms,
and hostile queries, which answer 400 or a correct list, never 500."""
import json
import random
import sqlite3
import urllib.parse

import pytest

import errorcapture
from errorcapture import BadQuery, parse_search

AT = 1800000000.0  # a fixed "now" for the grammar's relative times


def terms(text):
    return [(t.kind, t.key, t.values, t.negated) for t in parse_search(text, at=AT).terms]


def bad(text):
    with pytest.raises(BadQuery) as caught:
        parse_search(text, at=AT)
    return caught.value


# -- the grammar ---------------------------------------------------------------

def test_key_value_terms_quotes_lists_and_negation():
    assert terms('is:unresolved release:1.4.2 !environment:staging') == [
        ('is', 'is', ('unresolved',), False), ('tag', 'release', ('1.4.2',), False),
        ('tag', 'environment', ('staging',), True)]
    assert terms('user.email:"a b@x.io" browser:[Chrome, "Firefox 1",Safari]') == [
        ('tag', 'user.email', ('a b@x.io',), False), ('tag', 'browser', ('Chrome', 'Firefox 1', 'Safari'), False)]
    assert terms(r'message:"say \"hi\" \\ now"') == [('text', None, ('say "hi" \\ now',), False)]
    assert terms('url:http://shop/cart?x=1') == [('tag', 'url', ('http://shop/cart?x=1',), False)]
    # built-in keys are case-insensitive, a project's own tag keys are exact
    assert terms('Release:1 IS:Resolved Level:ERROR Region:eu') == [
        ('tag', 'release', ('1',), False), ('is', 'is', ('resolved',), False), ('level', 'level', ('error',), False),
        ('tag', 'Region', ('eu',), False)]


def test_has_times_and_free_text():
    assert terms('has:user !has:region') == [('has', 'user', (), False), ('has', 'region', (), True)]
    assert terms('firstSeen:-24h lastSeen:+1h age:-2w') == [
        ('time', 'firstSeen', ('>=', AT - 86400), False), ('time', 'lastSeen', ('<', AT - 3600), False),
        ('time', 'firstSeen', ('>=', AT - 14 * 86400), False)]
    assert terms('lastSeen:>=2027-01-15T00:00:00Z firstSeen:<2027-01-15') == [
        ('time', 'lastSeen', ('>=', 1799971200.0), False), ('time', 'firstSeen', ('<', 1799971200.0), False)]
    assert terms('payment  "card declined" !timeout') == [
        ('text', None, ('payment',), False), ('text', None, ('card declined',), False),
        ('text', None, ('timeout',), True)]


@pytest.mark.parametrize('text, message', [
    ('release:"1.4', 'unbalanced quote'),
    ('"unfinished phrase', 'unbalanced quote'),
    ('browser:[Chrome, Safari', 'unbalanced "["'),
    ('browser:[Chrome Safari]', 'unbalanced "["'),
    ('browser:[]', 'empty value'),
    ('release:', 'needs a value'),
    ('release: 1.0', 'needs a value'),
    ('release:"1"x', 'a space must follow'),
    ('lastSeen:-1y', 'lastSeen takes'),
    ('firstSeen:yesterday', 'firstSeen takes'),
    ('firstSeen:[-1h,-2h]', 'one time'),
    ('is:open', 'is: takes'),
    ('level:loud', 'level: takes'),
    ('has:[a,b]', 'one key'),
])
def test_malformed_queries_say_what_is_wrong(text, message):
    assert message in bad(text).message


def test_bounds_on_terms_length_and_values():
    assert 'too many terms' in bad(' '.join(['a'] * 51)).message
    assert len(parse_search(' '.join(['a'] * 50), at=AT).terms) == 50
    assert 'too long' in bad('x' * 4001).message
    assert 'longer than 200' in bad('release:' + 'v' * 201).message
    assert 'too many values' in bad('release:[%s]' % ','.join(str(n) for n in range(101))).message
    error = bad('is:unresolved release:"open')
    assert (error.key, error.position) == ('release', 22)  # where the open quote is


def test_any_text_parses_or_is_refused_cleanly():
    """Random text from the grammar's own alphabet: a query or BadQuery, nothing else."""
    alphabet = ' \t!:"[],\\\'%_;-+<>=abcZ09.\u00e9\u4e2d\x00'
    rng = random.Random(17)
    for _ in range(3000):
        text = ''.join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        try:
            query = parse_search(text, at=AT)
        except BadQuery:
            continue
        assert len(query.terms) <= errorcapture.SEARCH_MAX_TERMS


def test_worst_inputs_of_the_longest_size_parse_or_are_refused():
    """The tokenizer takes each character once (a single pass, no regular
    expression), so the worst inputs of the longest allowed size either parse
    or are refused by name; no timing is asserted (machines are noisy)."""
    for hostile in ('\\"' * 2000, 'k:"' + '\\' * 3996, 'k:[' + ',' * 3996, '!' * 4000, ':' * 4000,
                    'k:' + '"' * 3998, ('word ' * 800)[:4000]):
        try:
            parse_search(hostile, at=AT)
        except BadQuery as refused:
            assert str(refused)


# -- the API: every key ---------------------------------------------------------------

def add(client, key, group, **fields):
    """One stored error event of issue `group` (its fingerprint)."""
    store = client.wsgi.store
    project = store.project_by_key(key)
    fields.setdefault('message', 'message of %s' % group)
    event = errorcapture.make_error_event('test', fingerprint=[group], **fields)
    return store.events.add(project['id'], [event])[0]


def found(client, key, query, expect=200, **params):
    params.update(key=key, query=query)
    answer = client.get('/api/v1/issues?' + urllib.parse.urlencode(params), expect_errors=True)
    assert answer.status_int == expect, answer.body
    assert answer.content_type == 'application/json'
    if expect != 200:
        return answer.json
    return sorted(issue['title'] for issue in answer.json['issues'])


@pytest.fixture
def shop(client):
    """Five issues with known tags, statuses and times."""
    key = client.get('/api.php?action=generate&name=shop').json['hash']
    now = errorcapture.now()
    for n in range(3):
        add(client, key, 'checkout', message='card declined for order %d' % n, release='1.4.2',
            environment='production', user={'id': 'u%d' % n, 'email': 'u%d@shop.io' % n},
            tags={'region': 'eu west'}, level='error',
            request={'url': 'https://shop/checkout?step=2', 'headers': {'User-Agent': 'Mozilla/5.0 (Windows NT'
                     ' 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'}})
    add(client, key, 'checkout', message='card declined late', release='1.5.0', environment='staging',
        user={'ip_address': '10.1.2.3'}, tags={'region': 'us'}, level='error')
    add(client, key, 'search', message='timeout talking to index', release='1.5.0', environment='production',
        user={'username': 'ann'}, level='warning', contexts={'browser': {'name': 'Safari', 'version': '17.1'},
                                                            'os': {'name': 'iOS', 'version': '17'},
                                                            'device': {'model': 'iPhone15,2'}},
        server_name='web-2')
    add(client, key, 'old-report', message='report failed', timestamp=now - 3 * 86400, received=now - 3 * 86400,
        level='info')
    add(client, key, 'ignored-noise', message='noise', level='debug')
    add(client, key, 'fixed-bug', message='fixed bug', level='fatal')
    ids = {i['title']: i['id'] for i in client.get('/api/v1/issues?key=' + key).json['issues']}
    for title, status in (('fixed bug', 'resolved'), ('noise', 'ignored')):
        client.post('/api/v1/issues/%d?key=%s' % (ids[title], key), json.dumps({'status': status}),
                    content_type='application/json')
    return key


@pytest.fixture
def regressed(client, shop):
    """A resolved issue that got a new event."""
    ids = {i['title']: i['id'] for i in client.get('/api/v1/issues?key=' + shop).json['issues']}
    issue_id = ids['report failed']
    client.post('/api/v1/issues/%d?key=%s' % (issue_id, shop), json.dumps({'status': 'resolved'}),
                content_type='application/json')
    add(client, shop, 'old-report', message='report failed again', level='info')
    return shop


CHECKOUT, SEARCH, REPORT, NOISE, FIXED = ('card declined for order 0', 'timeout talking to index', 'report failed',
                                          'noise', 'fixed bug')


def test_is_each_status(client, regressed):
    key = regressed
    assert found(client, key, 'is:resolved') == [FIXED]
    assert found(client, key, 'is:ignored') == [NOISE]
    assert found(client, key, 'is:regressed') == [REPORT]
    assert found(client, key, 'is:unresolved') == sorted([CHECKOUT, SEARCH, REPORT])
    assert found(client, key, '!is:unresolved') == sorted([FIXED, NOISE])
    assert found(client, key, 'is:[resolved,ignored]') == sorted([FIXED, NOISE])


def test_level(client, shop):
    assert found(client, shop, 'level:warning') == [SEARCH]
    assert found(client, shop, 'level:[fatal,debug]') == sorted([FIXED, NOISE])
    assert found(client, shop, '!level:error level:[warning,info]') == sorted([SEARCH, REPORT])


def test_environment_and_release_match_events(client, shop):
    assert found(client, shop, 'environment:production') == sorted([CHECKOUT, SEARCH])
    assert found(client, shop, 'environment:staging') == [CHECKOUT]
    assert found(client, shop, 'environment:Production') == []  # exact
    assert found(client, shop, 'release:1.4.2') == [CHECKOUT]
    assert found(client, shop, 'release:1.5.0') == sorted([CHECKOUT, SEARCH])
    assert found(client, shop, 'release:9.9') == []
    # one event must match both: checkout's staging event is release 1.5.0
    assert found(client, shop, 'release:1.4.2 environment:staging') == []
    assert found(client, shop, 'release:1.5.0 environment:staging') == [CHECKOUT]
    # the older single filters are the same terms
    assert found(client, shop, '', environment='staging') == [CHECKOUT]


def test_user_fields(client, shop):
    assert found(client, shop, 'user.id:u1') == [CHECKOUT]
    assert found(client, shop, 'user.email:u2@shop.io') == [CHECKOUT]
    assert found(client, shop, 'user.ip:10.1.2.3') == [CHECKOUT]
    assert found(client, shop, 'user.username:ann') == [SEARCH]
    assert found(client, shop, 'user:"id:u0"') == [CHECKOUT]
    assert found(client, shop, 'user.id:nobody') == []


def test_built_in_tags_from_contexts_and_headers(client, shop):
    assert found(client, shop, 'browser:"Chrome 120.0.0.0"') == [CHECKOUT]
    assert found(client, shop, 'browser.name:[Chrome,Safari]') == sorted([CHECKOUT, SEARCH])
    assert found(client, shop, 'os.name:Windows') == [CHECKOUT]
    assert found(client, shop, 'os:"iOS 17"') == [SEARCH]
    assert found(client, shop, 'device:iPhone15,2') == [SEARCH]
    assert found(client, shop, 'server_name:web-2') == [SEARCH]
    assert found(client, shop, 'url:https://shop/checkout') == [CHECKOUT]


def test_own_tags_negation_and_quoted_values(client, shop):
    assert found(client, shop, 'region:"eu west"') == [CHECKOUT]
    assert found(client, shop, 'region:[us,"eu west"]') == [CHECKOUT]
    # checkout has events outside "eu west" (its us event): it matches the negation, others too
    assert found(client, shop, '!region:"eu west"') == sorted([CHECKOUT, SEARCH, REPORT, NOISE, FIXED])
    assert found(client, shop, '!region:[us,"eu west"]') == sorted([SEARCH, REPORT, NOISE, FIXED])
    assert found(client, shop, 'release:1.4.2 !region:"eu west"') == []


def test_has_and_not_has(client, shop):
    assert found(client, shop, 'has:region') == [CHECKOUT]
    assert found(client, shop, '!has:region') == sorted([SEARCH, REPORT, NOISE, FIXED])
    assert found(client, shop, 'has:release') == sorted([CHECKOUT, SEARCH])
    assert found(client, shop, 'has:device') == [SEARCH]


def test_relative_and_absolute_times(client, shop):
    assert found(client, shop, 'firstSeen:-24h') == sorted([CHECKOUT, SEARCH, NOISE, FIXED])
    assert found(client, shop, 'age:+2d') == [REPORT]
    assert found(client, shop, 'lastSeen:-1h') == sorted([CHECKOUT, SEARCH, NOISE, FIXED])
    assert found(client, shop, '!lastSeen:-1h') == [REPORT]
    cutoff = errorcapture.iso(errorcapture.now() - 86400)
    assert found(client, shop, 'lastSeen:<' + cutoff) == [REPORT]
    assert found(client, shop, 'lastSeen:>=' + cutoff) == sorted([CHECKOUT, SEARCH, NOISE, FIXED])


def test_free_text_over_title_culprit_and_messages(client, shop):
    assert found(client, shop, 'timeout') == [SEARCH]
    assert found(client, shop, 'TIMEOUT index') == [SEARCH]  # every word, any case
    assert found(client, shop, '"declined late"') == [CHECKOUT]  # a later event's message, not the title
    assert found(client, shop, '"order 2"') == [CHECKOUT]
    assert found(client, shop, '!declined level:error') == []
    assert found(client, shop, '', q='report') == [REPORT]
    assert found(client, shop, 'message:"declined late"') == [CHECKOUT]
    assert found(client, shop, '!message:declined level:error') == []


def test_unknown_key_is_a_400_naming_it(client, shop):
    answer = found(client, shop, 'release:1.4.2 colour:red', expect=400)
    assert answer['error'] == 'unknown search key "colour"'
    assert answer['details'] == {'key': 'colour', 'position': 14}
    assert found(client, shop, '!has:colour', expect=400)['details']['key'] == 'colour'
    answer = found(client, shop, 'lastSeen:-1y', expect=400)
    assert 'lastSeen' in answer['error'] and answer['details']['key'] == 'lastSeen'


def test_counts_and_histogram_scoped_to_event_terms(client, shop):
    answer = client.get('/api/v1/issues?' + urllib.parse.urlencode({'key': shop, 'query': 'region:"eu west"'})).json
    [checkout] = answer['issues']
    assert (checkout['count'], checkout['totalCount']) == (3, 4)
    assert sum(checkout['histogram24h']) == 3 and checkout['histogram24h'][-1] == 3
    [checkout] = [i for i in client.get('/api/v1/issues?' + urllib.parse.urlencode(
        {'key': shop, 'query': '!region:"eu west" release:1.5.0'})).json['issues'] if i['title'] == CHECKOUT]
    assert (checkout['count'], checkout['totalCount']) == (1, 4)
    assert sum(checkout['histogram24h']) == 1
    # without event terms the counts are the issue's own
    unscoped = client.get('/api/v1/issues?' + urllib.parse.urlencode({'key': shop, 'query': 'level:error'})).json
    [checkout] = unscoped['issues']
    assert checkout['count'] == 4 and 'totalCount' not in checkout
    assert checkout['userCount'] == 4  # u0, u1, u2 and the ip-only user


def test_retention_takes_scoped_counts_with_it(make):
    client = make(retention_events=2, sweep_interval=0)
    key = client.get('/api.php?action=generate&name=r').json['hash']
    for n in range(5):
        add(client, key, 'g', release='r%d' % (n % 2))
    store = client.wsgi.store
    project = store.project_by_key(key)
    while store.retention.prune_events(project['id'], 2, 0):
        pass
    assert found(client, key, 'release:r0') == ['message of g']  # events 3 (r1) and 4 (r0) remain
    [issue] = client.get('/api/v1/issues?key=%s&query=release:r0' % key).json['issues']
    assert (issue['count'], issue['totalCount']) == (1, 2)


MOVED_QUERIES = ('region:"eu west"', '!region:"eu west" release:1.5.0', 'release:1.5.0', 'browser:"Safari 17.1"',
                 'user.email:u1@shop.io', '!environment:staging', 'region:us')


def scoped_answers(client, key):
    """What the issue list and an issue's event list answer to MOVED_QUERIES."""
    answers = []
    for query in MOVED_QUERIES:
        issues = client.get('/api/v1/issues?' + urllib.parse.urlencode({'key': key, 'query': query})).json['issues']
        answers.append(sorted((i['title'], i['count'], i.get('totalCount'), i['histogram24h']) for i in issues))
        for issue in issues:
            events = client.get('/api/v1/issues/%d/events?%s' % (issue['id'], urllib.parse.urlencode(
                {'key': key, 'query': query}))).json['events']
            answers.append(sorted(e['id'] for e in events))
    return answers


def test_tag_rows_answer_the_same_before_and_after_they_move(client, shop):
    """A new event's tags are written to recent_event_tags (a row per event)
    and later moved to event_tags (a row per tag) many at a time (migration
    21): searches, scoped counts and filtered event lists answer the same
    wherever the rows are."""
    store = client.wsgi.store
    db = sqlite3.connect(store.path)

    def rows():
        return [db.execute('SELECT COUNT(*) FROM %s' % table).fetchone()[0]
                for table in ('recent_event_tags', 'event_tags')]
    before = scoped_answers(client, shop)
    assert rows()[0] >= 5 and rows()[1] == 0  # an event's tags in one row
    store.write(store.tags._tx_move_rows)
    assert rows()[0] == 0 and rows()[1] > 20
    assert scoped_answers(client, shop) == before
    # with rows in both tables: one more event, its rows recent
    add(client, shop, 'checkout', message='card declined again', release='1.5.0', environment='staging',
        tags={'region': 'us'}, level='error')
    assert rows()[0] > 0
    [issue] = client.get('/api/v1/issues?' + urllib.parse.urlencode({'key': shop, 'query': 'region:us'})).json[
        'issues']
    assert (issue['count'], issue['totalCount'], sum(issue['histogram24h'])) == (2, 5, 2)
    events = client.get('/api/v1/issues/%d/events?%s' % (issue['id'], urllib.parse.urlencode(
        {'key': shop, 'query': 'region:us release:1.5.0'}))).json['events']
    assert len(events) == 2
    # retention takes rows from both tables: the oldest checkout event (moved) and the newest (recent)
    doomed = db.execute('SELECT id, issue_id, received, tag_ids FROM events WHERE issue_id=? AND id IN'
                        ' ((SELECT MIN(id) FROM events WHERE issue_id=?), (SELECT MAX(id) FROM events WHERE issue_id=?))',
                        (issue['id'],) * 3).fetchall()
    store.write(store.events.tx_forget, store.project_by_key(shop)['id'], doomed)
    assert scoped_answers(client, shop) != before
    answers = {q: client.get('/api/v1/issues?' + urllib.parse.urlencode({'key': shop, 'query': q})).json['issues']
               for q in ('region:us', 'region:"eu west"')}
    assert [(i['count'], i['totalCount']) for i in answers['region:us']] == [(1, 3)]
    assert [(i['count'], i['totalCount']) for i in answers['region:"eu west"']] == [(2, 3)]
    # a transaction that brings MOVE_ROWS rows moves them all
    store.tags.MOVE_ROWS = 1
    add(client, shop, 'search', message='timeout again', release='1.5.0')
    assert rows()[0] == 0
    db.close()


# -- hostile queries: a 400 or a correct answer, never a 500 -------------------------

HOSTILE = [
    'release:"1.4.2', '"', '""', '[', 'release:[', 'release:[a,', 'release:[a b', '!', '!!', '!:', ':', '::x',
    'release:"\'; DROP TABLE issues; --"', "release:1' OR '1'='1", 'region:"eu west" OR 1=1', '%', '_', '\\',
    "'", '%_%', 'x%\' --', 'release:%', 'release:_', '"; SELECT * FROM projects; --"', 'has:"; --"',
    'is:unresolved)', 'level:error OR', 'firstSeen:-999999h', 'firstSeen:-9999999h', 'lastSeen:>9999-12-31',
    'lastSeen:>0', 'lastSeen:<1e308', 'age:-0m', '\x00', 'release:\x00', 'text\x00more', '\u202e\u0000\ufeff',
    'is:' + 'x' * 200, 'release:' + 'v' * 5000, '"' + 'p' * 3000 + '"', 'w ' * 5000, 'release:1 ' * 10000,
    ' '.join('r%d:x' % n for n in range(10000)), '[' * 3000, '"' * 3999, '\\' * 3999, 'k:' + '\\"' * 1500,
]


@pytest.mark.parametrize('query', HOSTILE)
def test_hostile_queries_never_fail_the_server(client, shop, query):
    answer = client.get('/api/v1/issues?' + urllib.parse.urlencode({'key': shop, 'query': query}),
                        expect_errors=True)
    assert answer.status_int in (200, 400), answer.body
    assert answer.content_type == 'application/json'
    if answer.status_int == 400:
        assert answer.json['error']
    # and nothing was harmed
    assert len(client.get('/api/v1/issues?key=' + shop).json['issues']) == 5


def test_metacharacters_are_plain_text(client, shop):
    add(client, shop, 'odd', message="100% of 'rows'_done; --", release="1'; DROP TABLE issues; --",
        tags={'region': '%'})
    assert found(client, shop, '"100%"') == ["100% of 'rows'_done; --"]
    assert found(client, shop, '"%"') == ["100% of 'rows'_done; --"]
    assert found(client, shop, "_done;") == ["100% of 'rows'_done; --"]
    assert found(client, shop, 'o_der') == []  # "_" is not a wildcard
    assert found(client, shop, "release:\"1'; DROP TABLE issues; --\"") == ["100% of 'rows'_done; --"]
    assert found(client, shop, 'region:%') == ["100% of 'rows'_done; --"]
    assert found(client, shop, 'region:_') == []
