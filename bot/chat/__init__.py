"""The chat side: reading messages (links, tags), rendering replies, button data, the
outbound path that paces Telegram, the replies the stages send, streaming edits,
progress and ordering. The only package (with handlers/) that shapes what Telegram
is sent.
"""
