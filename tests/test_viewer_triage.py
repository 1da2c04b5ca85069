"""Viewer: triage like Sentry (issue 17) in headless Chromium: the search box
speaking the query grammar, its hint for an unknown key, suggestions from the
project's tags, and the tag distribution bars on the issue page."""
import time
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from test_viewer import Project, driver, iso, page, project, sentry_event, transaction  # noqa: F401  (shared helpers and fixtures)

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
