"""The smallest end-to-end path: submit through /api.php, read it back."""
import json


def test_submit_then_poll(client):
    answer = client.post('/api.php', json.dumps({'hash': 'k', 'level': 'Error', 'message': 'boom'}))
    assert answer.json == {'ok': True, 'id': 1}
    errors = client.get('/api.php?action=errors&hash=k&since=0').json['errors']
    assert [e['message'] for e in errors] == ['boom']
