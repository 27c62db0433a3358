# ruff: noqa: E501  (a phrase bank: one sentence per line reads better than wrapped strings)
"""The offline generator's phrase bank: per topic, slots that templates combine into posts.

Every phrase names its topic with the shared keywords (and avoids the other topics' keywords), so
the sandbox audience reads a post as the arm it was written for. Add phrases freely: the tests
generate every format x topic and check the inferred arm, the length and the guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class TopicBank:
    """Slots for one topic. Each tip/take/question/fact is a full sentence."""

    name: str
    """How the topic reads in prose ("Python", "data science")."""
    subjects: tuple[str, ...]
    """Noun phrases carrying a keyword ("pandas groupby", "your SQL queries")."""
    goals: tuple[str, ...]
    """Completions of "How to ..." (lower case, no final punctuation)."""
    tips: tuple[str, ...]
    """Imperative advice, one sentence each, ending with a period."""
    takes: tuple[str, ...]
    """Opinions for hot takes, ending with a period."""
    questions: tuple[str, ...]
    """Questions to the audience, ending with a question mark."""
    facts: tuple[str, ...]
    """First-person observations with a number, ending with a period."""
    hashtags: tuple[str, ...]


BANKS: Final[dict[str, TopicBank]] = {
    "ai": TopicBank(
        name="AI",
        subjects=(
            "LLM evals",
            "prompt design",
            "AI agents",
            "small models",
            "LLM apps",
            "machine learning in production",
            "GPT tooling",
            "neural search",
        ),
        goals=(
            "evaluate an LLM feature before users do",
            "write a prompt that survives edge cases",
            "keep AI agents from looping forever",
            "pick the smallest model that works",
            "cut LLM costs without losing quality",
            "ship a machine learning feature safely",
        ),
        tips=(
            "Write 20 eval cases for your LLM before you write the prompt.",
            "Log every prompt and model answer; you cannot fix what you never saw.",
            "Give AI agents a hard step limit and a budget.",
            "Try the smaller model first; most tasks never need the biggest one.",
            "Ask the model for structured output and validate it like any user input.",
            "Treat a prompt change like a code change: review it and run the evals.",
            "Cache LLM answers for repeated inputs; it is the cheapest speed-up you will get.",
            "Measure machine learning quality on fresh data, not the set you tuned on.",
            "Keep untrusted text out of the instructions you give the model.",
            "Compare two versions of a prompt on the same 50 cases before you argue.",
        ),
        takes=(
            "Most AI agents are a while loop with a credit card attached.",
            "Prompt engineering is just writing clear specs, and most teams skip that too.",
            "A small model with good retrieval beats a giant model guessing.",
            "If your LLM feature has no evals, it is a demo, not a product.",
            "Fine-tuning is the last resort, not the first step, for most AI teams.",
            "Neural search without a keyword fallback will embarrass you in week one.",
        ),
        questions=(
            "What is the one LLM eval you wish you had written earlier?",
            "Which AI agents have you seen work reliably in production?",
            "Do you version your prompts like code, or does the model get surprises?",
            "Smallest model that handled your task well: which one was it?",
            "How do you catch a machine learning model drifting before users notice?",
        ),
        facts=(
            "We swapped a large model for a small one plus 30 examples in the prompt and kept 97% of quality at 1/8 of the cost.",
            "Our LLM evals caught 14 regressions last month that code review missed.",
            "Capping AI agents at 12 steps removed 90% of our runaway bills.",
            "Caching model answers cut our p95 latency from 4s to 300ms.",
            "One prompt rewrite fixed 6 bugs that 3 weeks of model tuning could not.",
        ),
        hashtags=("#AI", "#LLM", "#MachineLearning"),
    ),
    "python": TopicBank(
        name="Python",
        subjects=(
            "pandas groupby",
            "asyncio",
            "pytest fixtures",
            "type hints with typing",
            "numpy broadcasting",
            "Python decorators",
            "pip installs",
            "Python packaging",
        ),
        goals=(
            "speed up a slow pandas groupby",
            "test async code with pytest",
            "write a Python decorator you can read next year",
            "stop pip from breaking your environment",
            "vectorise a loop with numpy",
            "add typing to an old Python codebase",
        ),
        tips=(
            "Use categorical dtypes in pandas for repeated strings; memory drops fast.",
            "Reach for numpy broadcasting before you write a Python loop.",
            "Give every pytest fixture one job and a clear name.",
            "Pin pip dependencies with a lock file, not a hope.",
            "Use asyncio.TaskGroup so one failing task cancels the rest.",
            "Add typing at module boundaries first; the inside can wait.",
            "Wrap a decorator with functools.wraps or your tracebacks will lie.",
            "Run pytest with -x -q while you iterate; fast feedback beats full reports.",
            "Prefer pandas merge with validate= so bad joins fail loudly.",
            "Profile the Python code before you rewrite it; the slow part is rarely where you think.",
        ),
        takes=(
            "Most pandas code would be faster and clearer as one groupby.",
            "Type hints in Python are documentation that pytest can check.",
            "asyncio is not faster, it is just better at waiting.",
            "A decorator that hides a side effect is a bug with good manners.",
            "Nobody needs a custom Python framework; they need smaller functions.",
            "Your numpy loop is slow because it is a loop, not because it is Python.",
        ),
        questions=(
            "What pandas trick saved you the most time this year?",
            "pytest fixtures: do you keep them in conftest or beside the tests?",
            "Which Python decorator do you use every single week?",
            "Is asyncio worth it for your team, or did threads win?",
            "What is the worst pip dependency clash you have had to untangle?",
        ),
        facts=(
            "Switching a pandas pipeline to categorical dtypes cut memory from 9GB to 2GB.",
            "Replacing a Python loop with numpy broadcasting took a job from 40 minutes to 25 seconds.",
            "Adding typing to 3 core modules surfaced 11 real bugs before any test ran.",
            "Our pytest suite went from 12 minutes to 90 seconds after we fixed 4 fixtures.",
            "One asyncio.gather replaced 200 lines of thread code in our Python service.",
        ),
        hashtags=("#Python", "#pandas", "#pytest"),
    ),
    "data_science": TopicBank(
        name="data science",
        subjects=(
            "A/B test design",
            "SQL window functions",
            "regression diagnostics",
            "notebook hygiene",
            "product analytics",
            "dataset versioning",
            "applied statistics",
            "data science reviews",
        ),
        goals=(
            "run an A/B test you can trust",
            "write SQL your team can review",
            "read a regression table without fooling yourself",
            "keep a notebook reproducible",
            "spot a broken dataset early",
            "explain statistics to a busy stakeholder",
        ),
        tips=(
            "Decide the sample size before the A/B test starts, not when it looks good.",
            "Check the sample ratio first; a skewed split breaks the whole A/B test.",
            "Write SQL with CTEs named after what they mean.",
            "Plot the residuals before you trust any regression.",
            "Restart and run the notebook top to bottom before you share it.",
            "Version the dataset together with the code that made it.",
            "Report an interval, not just a point estimate; statistics is about uncertainty.",
            "Count rows before and after every SQL join.",
            "Keep one metric definition for analytics and reuse it everywhere.",
            "Look at 20 raw rows of the dataset before you compute anything.",
        ),
        takes=(
            "Half of all A/B test wins are peeking plus luck.",
            "SQL is the most underrated data science skill.",
            "A notebook nobody can rerun is an opinion, not an analysis.",
            "Linear regression with good features beats most fancy pipelines.",
            "Analytics dashboards nobody opens should be deleted.",
            "Statistics training should start with sampling bias, not formulas.",
        ),
        questions=(
            "What is the worst A/B test mistake you have seen shipped?",
            "Do you review SQL like code at your company?",
            "Which regression diagnostic do you check first?",
            "How do you keep a notebook from becoming a 900-cell monster?",
            "What makes you trust a new dataset?",
        ),
        facts=(
            "We re-ran 12 old A/B test results with proper statistics and 5 of the wins vanished.",
            "One SQL window function replaced a 300-line analytics job.",
            "Adding a sample ratio check caught 3 broken A/B test setups in a month.",
            "Our regression improved more from 2 clean features than from 40 noisy ones.",
            "Versioning every dataset saved us 2 days when a source changed silently.",
        ),
        hashtags=("#DataScience", "#SQL", "#Statistics"),
    ),
    "startups": TopicBank(
        name="startups",
        subjects=(
            "product-market fit",
            "your MVP",
            "early customers",
            "fundraising",
            "the seed round",
            "founder time",
            "startup pricing",
            "startups",
        ),
        goals=(
            "find product-market fit faster",
            "ship an MVP in 6 weeks",
            "talk to customers without leading them",
            "prepare a seed round",
            "spend founder time where it matters",
            "price a startup product",
        ),
        tips=(
            "Talk to 10 customers before you write code for the MVP.",
            "Charge from day one; paying customers tell you the truth.",
            "Cut the MVP until it embarrasses you a little.",
            "Track retention, not signups, when you look for product-market fit.",
            "Start fundraising conversations before you need the money.",
            "Write down what every founder owns; overlap wastes weeks.",
            "Ask customers what they did last week, not what they would do.",
            "Keep the seed round small enough to move fast.",
            "Do things that do not scale until customers pull the product from you.",
            "Kill features that no customers used in 30 days.",
        ),
        takes=(
            "Most startups die from building too much, not too little.",
            "Your MVP is too big. Cut it in half again.",
            "Fundraising is a distraction until customers are pulling.",
            "Founders who avoid sales should not start startups.",
            "Product-market fit feels like chaos, not like a dashboard going up.",
            "A seed round is not validation; customers paying is.",
        ),
        questions=(
            "What did your first 10 customers have in common?",
            "Founders: how did you know you had product-market fit?",
            "What would you cut from your MVP if you started again?",
            "What is the best fundraising advice you ever ignored?",
            "How many startups pivot after the seed round, in your experience?",
        ),
        facts=(
            "We talked to 40 customers in 3 weeks and threw away half the MVP.",
            "Raising prices by 30% lost us 2 customers and doubled revenue.",
            "Our seed round took 11 weeks and 63 meetings.",
            "Founders spending 20% of the week with customers shipped twice as fast in our cohort.",
            "Retention went from 18% to 41% once we cut 5 features from the MVP.",
        ),
        hashtags=("#startups", "#founders"),
    ),
    "productivity": TopicBank(
        name="productivity",
        subjects=(
            "deep work",
            "morning habits",
            "focus blocks",
            "productivity systems",
            "weekly reviews of habits",
            "your focus",
        ),
        goals=(
            "protect 3 hours of deep work a day",
            "build habits that survive a bad week",
            "keep your focus in an open office",
            "run a weekly productivity review",
        ),
        tips=(
            "Block 2 hours of deep work before you open chat.",
            "Stack new habits onto old ones you already keep.",
            "Close every tab that is not the task; focus is a setting.",
            "Review your habits every Friday for 15 minutes.",
            "Batch small tasks so they stop breaking your focus.",
            "Measure productivity by finished work, not hours online.",
        ),
        takes=(
            "Most productivity apps are procrastination with nicer fonts.",
            "Deep work is a calendar problem, not a willpower problem.",
            "Habits beat motivation every single week.",
            "Your focus is worth more than your inbox.",
        ),
        questions=(
            "What is the one habit that changed your productivity the most?",
            "How many hours of deep work do you really get a day?",
            "What breaks your focus most often?",
            "Do you plan deep work the night before or the same morning?",
        ),
        facts=(
            "Two deep work blocks a day doubled my finished tasks in 6 weeks.",
            "Turning off 14 notifications gave me back about 50 minutes of focus a day.",
            "Tracking habits for 90 days showed me that sleep drove 80% of my productivity.",
        ),
        hashtags=("#productivity", "#DeepWork"),
    ),
    "career": TopicBank(
        name="career",
        subjects=(
            "your resume",
            "a tech interview",
            "the promotion process",
            "hiring loops",
            "career growth",
            "a career change",
        ),
        goals=(
            "write a resume that gets replies",
            "prepare for a system design interview",
            "make your promotion case visible",
            "switch career tracks without starting over",
        ),
        tips=(
            "Put numbers in every resume bullet.",
            "Keep a brag document; your promotion case writes itself.",
            "Practice the interview out loud, not just in your head.",
            "Ask what hiring managers struggle with, then show you solved it.",
            "Plan your career in 2-year bets, not 10-year plans.",
            "Ask for feedback before the promotion cycle, not after.",
        ),
        takes=(
            "Most resume advice optimises for recruiters, not for the job.",
            "Leetcode-style interview loops filter for free time, not skill.",
            "A promotion is a lagging signal of work you already did.",
            "Hiring is a sales process and most teams forget that.",
        ),
        questions=(
            "What is the best interview question you have been asked?",
            "How did your last promotion really happen?",
            "What one line on your resume gets the most questions?",
            "What changed your career more: a manager or a project?",
        ),
        facts=(
            "Rewriting my resume with 6 measurable results tripled my reply rate.",
            "After 40 interview loops on the hiring side, the best signal was how people debug.",
            "My promotion packet took 2 hours because I kept a brag document for 12 months.",
        ),
        hashtags=("#career", "#hiring"),
    ),
    "open_source": TopicBank(
        name="open source",
        subjects=(
            "open source maintenance",
            "your first pull request",
            "GitHub issues",
            "maintainer burnout",
            "open source docs",
            "a GitHub project",
        ),
        goals=(
            "get your first pull request merged",
            "maintain an open source project without burning out",
            "write GitHub issues maintainers love",
            "grow contributors to your open source repo",
        ),
        tips=(
            "Read the contributing guide before you open a pull request.",
            "Keep each pull request small and about one thing.",
            "Label good first issues on GitHub and keep them current.",
            "Say no early; every feature is a maintainer's forever task.",
            "Write the reproduction in the GitHub issue, not just the symptom.",
            "Thank every open source contributor, even for a typo fix.",
        ),
        takes=(
            "Open source runs on unpaid maintainer time and everyone knows it.",
            "A pull request without tests is a request for homework.",
            "GitHub stars measure marketing, not quality.",
            "Every company should pay at least one open source maintainer.",
        ),
        questions=(
            "What was your first open source pull request?",
            "Maintainers: what makes you merge a pull request quickly?",
            "Which open source project do you depend on but never thanked?",
            "How do you triage 200 open GitHub issues?",
        ),
        facts=(
            "Our open source repo went from 3 to 40 contributors after we labelled 25 good first issues.",
            "Closing 120 stale GitHub issues made the real bugs visible again.",
            "A 10-line pull request template cut review time for maintainers by half.",
        ),
        hashtags=("#OpenSource", "#GitHub"),
    ),
    "devops": TopicBank(
        name="DevOps",
        subjects=(
            "Docker images",
            "Kubernetes clusters",
            "CI pipelines",
            "observability",
            "a deploy pipeline",
            "Kubernetes limits",
        ),
        goals=(
            "shrink a Docker image by 80%",
            "make CI finish in under 5 minutes",
            "add observability before the outage",
            "deploy on a Friday without fear",
        ),
        tips=(
            "Use multi-stage Docker builds and copy only what runs.",
            "Cache dependencies in CI; rebuilding the world is slow.",
            "Set Kubernetes requests and limits from real usage.",
            "Add observability with traces first, dashboards later.",
            "Make every deploy reversible in one command.",
            "Fail CI on warnings you actually care about, nothing more.",
        ),
        takes=(
            "Most teams do not need Kubernetes; they need fewer services.",
            "If you cannot roll back a deploy in a minute, you cannot deploy.",
            "Observability is not dashboards; it is answering new questions fast.",
            "A CI pipeline over 20 minutes is a culture problem.",
        ),
        questions=(
            "How long does your CI take from push to green?",
            "What is your Docker base image of choice?",
            "Which observability signal found your last outage?",
            "Do you deploy on Fridays?",
        ),
        facts=(
            "Multi-stage builds took our Docker image from 1.9GB to 180MB.",
            "Caching in CI cut our pipeline from 22 minutes to 6.",
            "Right-sizing Kubernetes requests saved 35% of our cluster bill.",
        ),
        hashtags=("#DevOps", "#Kubernetes"),
    ),
}
"""Phrase banks for every topic of the shared vocabulary."""

OPENERS_SINGLE: Final[tuple[str, ...]] = (
    "", "", "Lesson from this week: ", "Small thing, big difference: ", "Reminder: ",
    "Learned the hard way: ", "Quick one: ", "Note to self: ",
)  # fmt: skip
CLOSERS: Final[tuple[str, ...]] = (
    "", "", "", "Future you will thank you.", "Boring, and it works.", "Try it this week.",
    "Simple beats clever.", "Small change, big win.", "Worth it every time.",
)  # fmt: skip
LIST_INTROS: Final[tuple[str, ...]] = (
    "{n} {name} lessons I wish I had learned earlier:",
    "My {name} checklist, {n} lines:",
    "{n} things about {subject} nobody told me:",
    "Where I would start with {subject} today:",
    "{n} {name} rules I keep coming back to:",
)  # fmt: skip
QUESTION_FRAMES: Final[tuple[str, ...]] = (
    "{question}",
    "{fact} {question}",
    "Genuine question for {name} people: {question_lower}",
    "Curious what others see: {question_lower}",
    "Asking for a friend: {question_lower}",
)
QUESTION_TAILS: Final[tuple[str, ...]] = ("", "", " Tell me below?")
HOT_TAKE_PREFIXES: Final[tuple[str, ...]] = ("Hot take: ", "Hot take: ", "Unpopular opinion: ")
HOT_TAKE_TAILS: Final[tuple[str, ...]] = (
    "", "", " Change my mind.", " I will die on this hill.", " Fight me (politely).",
)  # fmt: skip
HOW_TO_FRAMES: Final[tuple[str, ...]] = (
    "How to {goal}:\n\n{steps}",
    "How to {goal}, in {n} steps:\n{steps}",
    "How to {goal}, the short version: {tip} {tip2}",
)
THREAD_HOOKS: Final[tuple[str, ...]] = (
    "Everything I learned about {subject} the hard way, in {k} posts 🧵",
    "I spent {months} months on {subject}. Here is what actually worked:",
    "{fact} Here is how we did it, step by step 🧵",
    "Most advice about {subject} is wrong. A short thread:",
    "{k} {name} lessons that took me years to learn:",
)
THREAD_ENDINGS: Final[tuple[str, ...]] = (
    "That's it. If this helped, a repost helps others find it.",
    "Summary: start small, measure, repeat. Follow for more on {name}.",
    "Which one would you add?",
    "Bookmark this for the next time {subject} gets hard.",
)
EMOJI: Final[tuple[str, ...]] = ("", "", "", "", " 🚀", " 💡", " ✅", " 📈")
ELABORATIONS: Final[tuple[str, ...]] = (
    "It sounds obvious. Almost nobody does it.",
    "This alone saved us hours every week.",
    "Skip it and you pay for it later, with interest.",
    "We learned this after one very bad week.",
    "Took me far too long to start doing this.",
    "Cheap to do, expensive to forget.",
    "The second time you need it, you will be glad it is there.",
    "Nobody notices when it works; everybody notices when it is missing.",
    "Start with this one if you only pick one.",
    "The payoff shows up in month two, not day one.",
    "Write it down once and stop arguing about it.",
    "Five minutes now, hours saved later.",
)
"""Generic second sentences that make a thread part or a post more than a bare tip."""
