"""Viewer: triage like Sentry (issue 17) in headless Chromium: the search box
speaking the query grammar, its hint for an unknown key, suggestions from the
project's tags, tag distribution bars, event navigation, one trace across every
kind with links both ways, replays and their errors, bulk changes and merging,
releases, and hostile strings on the new pages."""
import json
import time
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from helpers import sentry_auth
from test_viewer import (Project, driver, http, iso, ok, page, project, sentry_event,  # noqa: F401  (shared helpers
                         transaction)  # and fixtures)

pytestmark = pytest.mark.browser


def tagged_error(message, release='shop@1.0', browser='Firefox', user='u-1', trace=None, region='eu-west', when=None):
    event = {'event_id': uuid.uuid4().hex, 'level': 'error', 'platform': 'python', 'release': release,
             'environment': 'production', 'timestamp': when or time.time(),
             'exception': {'values': [{'type': 'RuntimeError', 'value': message, 'stacktrace': {'frames': [
                 {'filename': 'app/%s.py' % message.split()[0].lower(), 'function': 'handle', 'lineno': 3,
                  'in_app': True}]}}]},
             'tags': {'browser': browser, 'region': region}, 'user': {'id': user}}
    if trace:
        event['contexts'] = {'trace': {'trace_id': trace, 'span_id': uuid.uuid4().hex[:16]}}
    return event


def rows(page):
    return page.all(page.tid('issue-row'))


def search(page, text):
    box = page.one(page.tid('search-query'))
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def test_search_box_speaks_the_query_grammar_and_keeps_the_query_in_the_url(page):
    p = page.project
    p.sentry_store(tagged_error('Checkout crashed', release='shop@2.0', browser='Safari'))
    p.sentry_store(tagged_error('Login crashed', release='shop@1.0', browser='Safari'))
    p.sentry_store(tagged_error('Search crashed', release='shop@2.0', browser='Chrome'))
    p.issue_matching('Search crashed')
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 3)
    search(page, 'is:unresolved release:shop@2.0 browser:Safari')
    page.wait(lambda: len(rows(page)) == 1 and 'Checkout crashed' in rows(page)[0].text, message='both terms hold')
    assert 'query=is%3Aunresolved+release%3Ashop%402.0+browser%3ASafari' in page.d.execute_script('return location.hash')
    # the URL alone brings the same search back
    page.open(page.d.execute_script('return location.hash').lstrip('#'))
    page.wait(lambda: len(rows(page)) == 1 and 'Checkout crashed' in rows(page)[0].text, message='query from the URL')
    assert page.one(page.tid('search-query')).get_attribute('value') == 'is:unresolved release:shop@2.0 browser:Safari'
    search(page, '!browser:Safari')
    page.wait(lambda: len(rows(page)) == 1 and 'Search crashed' in rows(page)[0].text, message='negation')
    search(page, 'crashed release:[shop@1.0,shop@2.0] has:region')
    page.wait(lambda: len(rows(page)) == 3, message='value list and free text')


def test_an_unknown_key_is_a_hint_under_the_box(page):
    p = page.project
    p.sentry_store(tagged_error('Worker stalled'))
    p.issue_matching('Worker stalled')
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 1)
    search(page, 'colour:red')
    hint = page.wait_css(page.tid('search-hint'))
    page.wait(lambda: hint.is_displayed() and 'colour' in hint.text, message='hint names the key')
    assert not rows(page)
    assert 'Fix the search' in page.one(page.tid('issues-empty')).text
    search(page, 'region:eu-west')
    page.wait(lambda: len(rows(page)) == 1, message='a known tag key works')
    assert not page.one(page.tid('search-hint')).is_displayed()


def test_suggestions_come_from_the_projects_tag_keys_and_values(page):
    p = page.project
    p.sentry_store(tagged_error('Cache miss storm', region='ap-south'))
    p.issue_matching('Cache miss storm')
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 1)
    box = page.one(page.tid('search-query'))
    box.clear()
    box.send_keys('regi')
    suggestion = page.wait(lambda: [s for s in page.all(page.tid('search-suggestion')) if s.is_displayed()],
                           message='key suggestions')[0]
    assert suggestion.get_attribute('data-insert') == 'region:'
    suggestion.click()
    page.wait(lambda: box.get_attribute('value') == 'region:', message='key inserted')
    value = page.wait(lambda: [s for s in page.all(page.tid('search-suggestion'))
                               if s.is_displayed() and s.get_attribute('data-insert') == 'region:ap-south'],
                      message='value suggestions')[0]
    value.click()
    page.wait(lambda: box.get_attribute('value') == 'region:ap-south ', message='value inserted')
    box.send_keys(Keys.ENTER)
    page.wait(lambda: len(rows(page)) == 1 and 'Cache miss storm' in rows(page)[0].text, message='suggested search runs')


def test_issue_page_shows_tag_distribution_bars(page):
    p = page.project
    for browser in ('Chrome', 'Chrome', 'Chrome', 'Safari'):
        p.sentry_store(tagged_error('Render failed', browser=browser))
    issue = p.issue_matching('Render failed')
    page.wait(lambda: p.read('/api/v1/issues/%s' % issue['id'])['issue']['count'] == 4, message='4 events stored')
    page.open('/issues/%s' % issue['id'])
    facet = page.wait(lambda: [f for f in page.all(page.tid('facet')) if f.get_attribute('data-key') == 'browser'],
                      message='browser facet')[0]
    values = {v.get_attribute('data-value'): v.find_element(By.CSS_SELECTOR, page.tid('facet-pct')).text
              for v in facet.find_elements(By.CSS_SELECTOR, page.tid('facet-value'))}
    assert values == {'Chrome': '75%', 'Safari': '25%'}
    bars = facet.find_elements(By.CSS_SELECTOR, '.meter-fill')
    widths = [float(b.get_attribute('style').split('width:')[1].split('%')[0]) for b in bars]
    assert widths == [75.0, 25.0]


def test_a_facet_value_opens_the_issues_events_filtered_by_it(page):
    p = page.project
    for browser in ('Chrome', 'Chrome', 'Safari'):
        p.sentry_store(tagged_error('Paint failed', browser=browser))
    issue = p.issue_matching('Paint failed')
    page.wait(lambda: p.read('/api/v1/issues/%s' % issue['id'])['issue']['count'] == 3, message='3 events stored')
    page.open('/issues/%s' % issue['id'])
    facet = page.wait(lambda: [f for f in page.all(page.tid('facet')) if f.get_attribute('data-key') == 'browser'],
                      message='browser facet')[0]
    [v for v in facet.find_elements(By.CSS_SELECTOR, page.tid('facet-value')) if v.get_attribute('data-value') == 'Safari'][0] \
        .find_element(By.TAG_NAME, 'a').click()
    page.wait(lambda: page.one(page.tid('tab-panel-events')).is_displayed(), message='events tab opened')
    page.wait(lambda: len(page.all(page.tid('event-row'))) == 1, message='events of Safari only')
    assert page.one(page.tid('events-query')).get_attribute('value') == 'browser:Safari'


def test_event_navigation_older_newer_oldest_latest_with_the_event_in_the_url(page):
    p = page.project
    now = time.time()
    for i in range(3):
        p.sentry_store(tagged_error('Queue overflow', release='q@%d' % i, user='u-%d' % (i % 2), when=now - 300 + i * 60))
    issue = p.issue_matching('Queue overflow')
    page.wait(lambda: p.read('/api/v1/issues/%s' % issue['id'])['issue']['count'] == 3, message='3 events')
    page.open('/issues/%s' % issue['id'])
    page.wait(lambda: 'q@2' in page.one(page.tid('event-release')).text, message='latest event first')
    assert page.one(page.tid('issue-users')).text == '2'
    assert 'disabled' in page.one(page.tid('event-newer')).get_attribute('class')
    page.one(page.tid('event-older')).click()
    page.wait(lambda: 'q@1' in page.one(page.tid('event-release')).text, message='older')
    hash_ = page.d.execute_script('return location.hash')
    assert hash_.startswith('#/issues/%s/events/' % issue['id'])
    page.one(page.tid('event-oldest')).click()
    page.wait(lambda: 'q@0' in page.one(page.tid('event-release')).text, message='oldest')
    assert 'disabled' in page.one(page.tid('event-older')).get_attribute('class')
    page.d.back()
    page.wait(lambda: 'q@1' in page.one(page.tid('event-release')).text, message='back goes to the event before')
    page.open(hash_.lstrip('#'))
    page.wait(lambda: 'q@1' in page.one(page.tid('event-release')).text, message='the URL opens that event')
    page.one(page.tid('event-latest')).click()
    page.wait(lambda: 'q@2' in page.one(page.tid('event-release')).text, message='latest')


def envelope(event_id, items):
    """A Sentry envelope: its header, then (item header, payload bytes) pairs."""
    parts = [json.dumps({'event_id': event_id}).encode()]
    for header, payload in items:
        parts += [json.dumps(dict(header, length=len(payload))).encode(), payload]
    return b'\n'.join(parts) + b'\n'


def test_the_issue_page_shows_the_events_user_feedback_and_attachments(page):
    p = page.project
    event_id, feedback_id = uuid.uuid4().hex, uuid.uuid4().hex
    error = tagged_error('Checkout button dead')
    error['event_id'] = event_id
    log = b'2026-12-01 10:00:01 ERROR charge refused\n' * 4
    headers = dict(sentry_auth(p.key), **{'Content-Type': 'application/x-sentry-envelope'})
    url = '%s/api/%s/envelope/' % (p.base, p.id)
    ok(http('POST', url, envelope(event_id, [({'type': 'event'}, json.dumps(error).encode()), (
        {'type': 'attachment', 'filename': 'checkout.log', 'content_type': 'text/plain'}, log)]), headers), 'event')
    feedback = {'type': 'feedback', 'event_id': feedback_id, 'timestamp': time.time(), 'contexts': {'feedback': {
        'message': 'I pressed Pay and nothing happened', 'name': 'Ada Lovelace', 'associated_event_id': event_id}}}
    ok(http('POST', url, envelope(feedback_id, [({'type': 'feedback'}, json.dumps(feedback).encode())]), headers),
       'feedback')
    issue = p.issue_matching('Checkout button dead')
    page.open('/issues/%s' % issue['id'])
    panel = page.wait_css(page.tid('event-feedback'))
    assert 'I pressed Pay and nothing happened' in panel.text and 'Ada Lovelace' in panel.text
    rows = page.all(page.tid('attachment-row'))
    assert [r.find_element(By.CSS_SELECTOR, page.tid('attachment-name')).text for r in rows] == ['checkout.log']
    download = rows[0].find_element(By.CSS_SELECTOR, page.tid('attachment-download')).get_attribute('href')
    status, body = http('GET', download)
    assert status == 200 and body == log.decode()
    # the event's own URL on the issue page shows them too
    page.open('/issues/%s/events/%s' % (issue['id'], issue_event_id(p, issue)))
    page.wait_css(page.tid('event-feedback'))
    assert page.all(page.tid('attachment-row'))


def issue_event_id(p, issue):
    return p.read('/api/v1/issues/%s/events' % issue['id'])['events'][0]['id']


def test_trace_page_links_every_kind_both_ways(page):
    p = page.project
    trace = uuid.uuid4().hex
    p.sentry_store(tagged_error('Charge declined', trace=trace))
    p.open_sentry([transaction('POST /api/charge', 180, [
        {'spanId': 'a1', 'op': 'db.query', 'description': 'SELECT card', 'durationMs': 30}], trace=trace)])
    p.seestack('logs', {'logs': [{'level': 'error', 'message': 'charge log line', 'service': 'billing',
                                  'traceId': trace, 'timestamp': iso(time.time())}]})
    issue = p.issue_matching('Charge declined')
    page.open('/issues/%s' % issue['id'])
    page.wait_css(page.tid('event-nav-trace')).click()
    page.wait(lambda: len(page.all(page.tid('trace-item'))) >= 3, message='trace items')
    kinds = {i.get_attribute('data-kind') for i in page.all(page.tid('trace-item'))}
    assert {'error', 'transaction', 'log'} <= kinds
    assert 'charge log line' in page.text()
    page.one(page.tid('trace-transaction-link')).click()
    page.wait_css(page.tid('span-waterfall'))
    # transaction -> its errors -> the error's event
    page.wait_css(page.tid('linked-error-link')).click()
    page.wait(lambda: page.d.execute_script('return location.hash').startswith('#/issues/%s/events/' % issue['id']),
              message='error opened from the transaction')
    page.wait_css(page.tid('event-trace-link'))
    page.one(page.tid('event-trace-link')).click()
    page.wait_css(page.tid('trace-error-link')).click()
    page.wait(lambda: 'Charge declined' in page.one(page.tid('issue-title')).text, message='back on the issue')


def test_replay_links_to_its_errors_and_back(page):
    p = page.project
    session = uuid.uuid4().hex
    p.seestack('replay', {'fingerprint': session, 'sessionId': session, 'events': [
        {'eventType': 'navigation', 'eventData': '{"to": "/cart"}', 'url': 'https://shop.example/cart',
         'timestampMillis': int(time.time() * 1000) - 5000}]})
    error = tagged_error('cart is undefined')
    error['contexts'] = {'replay': {'replay_id': session}}
    p.sentry_store(error)
    issue = p.issue_matching('cart is undefined')
    page.open('/issues/%s' % issue['id'])
    page.wait_css(page.tid('event-replay-link')).click()
    page.wait_css(page.tid('replay-event'))
    page.wait_css(page.tid('linked-error-link')).click()
    page.wait(lambda: 'cart is undefined' in page.one(page.tid('issue-title')).text, message='replay -> error')


def test_bulk_resolve_and_merge_from_the_list(page):
    p = page.project
    for name in ('Alpha failed', 'Beta failed', 'Gamma failed'):
        p.sentry_store(tagged_error(name))
    p.issue_matching('Gamma failed')
    page.open('/issues')
    page.wait_count(page.tid('issue-row'), 3)
    pick = lambda text: [r for r in rows(page) if text in r.text][0].find_element(By.CSS_SELECTOR, page.tid('issue-select'))  # noqa: E731
    pick('Alpha').click()
    pick('Beta').click()
    assert page.one(page.tid('bulk-count')).text == '2 selected'
    page.one(page.tid('bulk-resolve')).click()
    page.wait(lambda: len(rows(page)) == 1 and 'Gamma' in rows(page)[0].text, message='resolved ones leave the list')
    statuses = {i['title']: i['status'] for i in p.read('/api/v1/issues', status='all')['issues']}
    assert statuses == {'RuntimeError: Alpha failed': 'resolved', 'RuntimeError: Beta failed': 'resolved',
                        'RuntimeError: Gamma failed': 'unresolved'}
    search(page, 'is:resolved')
    page.wait_count(page.tid('issue-row'), 2)
    page.one(page.tid('issues-select-all')).click()
    page.one(page.tid('bulk-merge')).click()
    page.d.switch_to.alert.accept()
    page.wait(lambda: len(rows(page)) == 1, message='two issues became one')
    merged = [i for i in p.read('/api/v1/issues', status='all')['issues'] if 'Gamma' not in i['title']]
    assert len(merged) == 1 and merged[0]['count'] == 2


def test_releases_list_and_release_page(page):
    p = page.project
    p.sentry_store(tagged_error('Old bug', release='app@1.0'))
    p.sentry_store(tagged_error('New bug', release='app@2.0'))
    p.issue_matching('New bug')
    page.open('/releases')
    page.wait_count(page.tid('release-row'), 2)
    versions = [r.get_attribute('data-version') for r in page.all(page.tid('release-row'))]
    assert versions == ['app@2.0', 'app@1.0'], 'newest first'
    page.all(page.tid('release-link'))[0].click()
    page.wait(lambda: page.one(page.tid('release-version')).text == 'app@2.0', message='release page')
    new = page.wait_css(page.tid('release-new-issues-table'))
    assert 'New bug' in new.text and 'Old bug' not in new.text
    new.find_element(By.CSS_SELECTOR, page.tid('release-issue-link')).click()
    page.wait(lambda: 'New bug' in page.one(page.tid('issue-title')).text, message='issue from the release')
    page.one(page.tid('event-nav-release')).click()
    page.wait(lambda: page.one(page.tid('release-version')).text == 'app@2.0', message='event -> release')


def test_hostile_strings_stay_text_on_the_trace_release_and_event_navigation_pages(page):
    from test_viewer import XSS, XSS_ALL
    import urllib.parse
    p = page.project
    trace = uuid.uuid4().hex
    hostile = sentry_event(value='trace xss', xss=True)
    hostile['contexts'] = {'trace': {'trace_id': trace, 'span_id': uuid.uuid4().hex[:16]}}
    p.sentry_store(hostile)
    p.open_sentry([transaction(XSS_ALL, 50, [{'spanId': 's1', 'op': XSS[0], 'description': XSS[3], 'durationMs': 5}],
                               trace=trace)])
    p.seestack('logs', {'logs': [{'level': 'error', 'message': XSS_ALL, 'service': XSS[1], 'traceId': trace,
                                  'timestamp': iso(time.time())}]})
    issue = p.issue_matching('trace xss')
    release = p.read('/api/v1/releases')['releases'][0]['version']
    for route, testid in (('/traces/' + trace, 'trace-item'), ('/releases', 'release-row'),
                          ('/releases/' + urllib.parse.quote(release, safe=''), 'release-version'),
                          ('/issues/%s' % issue['id'], 'event-nav')):
        page.open(route)
        page.wait_css(page.tid(testid))
        time.sleep(0.3)
        page.assert_inert(route)
    page.open('/traces/' + trace)
    page.wait_count(page.tid('trace-item'), 3)
    shown = page.d.execute_script('return document.body.innerText;')
    assert XSS_ALL in shown and XSS[1] in shown
