"""The book's readings: the papers' numbers as we read them (``claims``), verdict rules and findings text per
chapter, and the site build. They read the experiments' tables; nothing in padlib's methods imports them."""
