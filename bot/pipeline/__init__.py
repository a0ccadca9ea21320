"""The path of one link, stage by stage; a link's status is its stage. Read in order:

1. intake.py       the handler's part: screen, record before any slow work, queue
2. worker.py       claims any link's next stage from MongoDB, under a renewed lease
3. capturing.py    pending → capturing → captured: page, screenshot, text
4. delivering.py   captured → delivering: the photo the user is owed, acknowledged at once
5. summarizing.py  → summarizing → done: the summary streamed into that reply
6. finish.py       the closing reaction, once every link of the message is finished

`base.py` holds what the stages share; the Bot API calls they make are in
bot/chat/replies.py.
"""
