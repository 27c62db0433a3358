"""Content layer: generators (offline, OpenAI), threads, candidates, the safety guard, length.

Pure functions where possible; network only in the OpenAI generator and the optional moderation
layer. Import the submodules directly (``from xbot_assets.content.safety import check``): this
package imports nothing at load so the heavy model layer stays lazy.
"""
