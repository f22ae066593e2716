"""Tiny MovieLens archives in each real GroupLens layout, for parser and pipeline tests.

Every writer produces a zip named and structured like the real release (same folder,
file names, delimiters, encodings, line endings), with a handful of rows.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

# (userId, movieId, rating, timestamp) — user 3 rates movie 20 twice (a duplicate).
RATINGS = [
    (1, 10, 4.0, 964982703),
    (1, 20, 3.5, 964981247),
    (1, 30, 5.0, 964982224),
    (2, 10, 2.0, 964983815),
    (2, 40, 4.5, 964982931),
    (3, 20, 1.0, 964982400),
    (3, 30, 3.0, 964982500),
    (3, 20, 2.5, 964990000),
    (4, 10, 5.0, 964982600),
    (4, 40, 0.5, 964982700),
]
MOVIES = [
    (10, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    (20, 'Amélie, "Le fabuleux destin" (2001)', "Comedy|Romance"),
    (30, "Heat (1995)", "Action|Crime|Thriller"),
    (40, "Nothing Here (2000)", "(no genres listed)"),
    (50, "Never Rated (1999)", "Drama"),
]
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _csv_title(title: str) -> str:
    return f'"{title.replace(chr(34), chr(34) * 2)}"' if ("," in title or '"' in title) else title


def write_latest_csv(folder: Path, name: str = "ml-latest-small", inner: str | None = None) -> Path:
    """ml-latest-small / ml-25m / ml-32m layout: CSV with header, CRLF line endings."""
    inner = inner or name
    ratings = "userId,movieId,rating,timestamp\r\n" + "".join(
        f"{u},{m},{r:.1f},{t}\r\n" for u, m, r, t in RATINGS
    )
    movies = "movieId,title,genres\r\n" + "".join(
        f"{m},{_csv_title(t)},{g}\r\n" for m, t, g in MOVIES
    )
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{inner}/ratings.csv", ratings)
        zf.writestr(f"{inner}/movies.csv", movies)
        zf.writestr(f"{inner}/README.txt", "tiny test archive")
    return path


def write_dat(folder: Path, name: str = "ml-1m", inner: str = "ml-1m", users: bool = True) -> Path:
    """ml-1m / ml-10m layout: `::`-separated .dat files, latin-1 movie titles (ml-1m)."""
    ratings = "".join(
        f"{u}::{m}::{int(max(1, round(r))) if name == 'ml-1m' else r}::{t}\n"
        for u, m, r, t in RATINGS
    )
    movies = "".join(f"{m}::{t}::{g}\n" for m, t, g in MOVIES)
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{inner}/ratings.dat", ratings)
        zf.writestr(f"{inner}/movies.dat", movies.encode("latin-1" if name == "ml-1m" else "utf-8"))
        if users:
            zf.writestr(
                f"{inner}/users.dat",
                "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n4::M::45::7::02460\n",
            )
    return path


def write_ml100k(folder: Path) -> Path:
    """ml-100k layout: tab-separated u.data, pipe/latin-1 u.item with 19 flags, u1..u5 folds."""
    rows = [(u, m, int(max(1, round(r))), t) for u, m, r, t in RATINGS if (u, m) != (3, 20)]
    data = "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in rows)
    items = []
    for m, title, genres in MOVIES:
        labels = set(genres.replace("Children", "Children's").split("|"))
        flags = "|".join("1" if g in labels else "0" for g in ML100K_GENRES)
        items.append(f"{m}|{title}|01-Jan-1995||http://us.imdb.com/M/x|{flags}\n")
    genre = "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n"
    user = (
        "1|24|M|technician|85711\n2|53|F|other|94043\n"
        "3|23|M|writer|32067\n4|24|M|technician|43537\n"
    )
    path = folder / "ml-100k.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", data)
        zf.writestr("ml-100k/u.item", "".join(items).encode("latin-1"))
        zf.writestr("ml-100k/u.genre", genre)
        zf.writestr("ml-100k/u.user", user)
        for k in range(1, 6):
            test = [row for i, row in enumerate(rows) if i % 5 == k - 1]
            base = [row for i, row in enumerate(rows) if i % 5 != k - 1]
            zf.writestr(
                f"ml-100k/u{k}.test", "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in test)
            )
            zf.writestr(
                f"ml-100k/u{k}.base", "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in base)
            )
    return path


def write_ratings_csv(
    path: Path, rows: list[tuple] | None = None, header: str = "userId,movieId,rating,timestamp"
) -> Path:
    """A user ratings CSV (the `ratings_csv` source)."""
    rows = RATINGS if rows is None else rows
    path.write_text(header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def write_movies_csv(path: Path) -> Path:
    path.write_text(
        "movieId,title,genres\n" + "".join(f"{m},{_csv_title(t)},{g}\n" for m, t, g in MOVIES)
    )
    return path
