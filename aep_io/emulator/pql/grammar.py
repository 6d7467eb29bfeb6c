"""The PQL grammar, in lark's EBNF (kept in a module so no package data is needed).

Keywords are case-sensitive as in PQL. Words that only mean something after ``occurs``
(time units) are plain names checked by the parser; keywords are still valid field names
after a dot (``a.last``) thanks to lark's contextual lexer.
"""

from __future__ import annotations

__all__ = ["GRAMMAR"]

GRAMMAR = r"""
start: expr

?expr: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*

?not_expr: NOT not_expr                      -> not_
    | BANG not_expr                          -> not_
    | EXISTS NAME FROM expr _cond_sep not_expr   -> exists
    | FORALL NAME FROM expr _cond_sep not_expr   -> forall
    | predicate

_cond_sep: WHERE | ":"

?predicate: sum
    | sum COMP_OP sum                        -> compare
    | sum IN sum                             -> in_
    | sum NOTIN sum                          -> not_in
    | sum LIKE sum                           -> like
    | sum OCCURS occurs_spec                 -> occurs

?occurs_spec: COMP_OP INT NAME direction time_ref  -> occurs_rel
    | BETWEEN time_ref _AND time_ref         -> occurs_between
    | direction time_ref                     -> occurs_dir
    | ON time_ref                            -> occurs_on
    | time_ref                               -> occurs_on

direction: BEFORE | AFTER | FROM

?time_ref: period | sum
period: (THIS | LAST | NEXT) NAME

?sum: product
    | sum PLUS product                       -> arith
    | sum MINUS product                      -> arith
?product: unary
    | product STAR unary                     -> arith
    | product SLASH unary                    -> arith
    | product PERCENT unary                  -> arith
?unary: MINUS unary                          -> neg
    | postfix

?postfix: atom
    | postfix "." NAME                       -> field
    | postfix "." NAME "(" [args] ")"        -> method
    | postfix LSQB expr "]"                  -> filter

?atom: STRING                                -> string
    | INT                                    -> int
    | FLOAT                                  -> float
    | TRUE                                   -> true
    | FALSE                                  -> false
    | NOW                                    -> time_word
    | TODAY                                  -> time_word
    | YESTERDAY                              -> time_word
    | TOMORROW                               -> time_word
    | NAME                                   -> name
    | NAME "(" [args] ")"                    -> call
    | LSQB [args] "]"                        -> array
    | "(" expr ")"

args: expr ("," expr)*

_OR: "or"
_AND: "and"
NOT: "not"
BANG: "!"
EXISTS: "exists"
FORALL: "forall"
FROM: "from"
WHERE: "where"
IN: "in"
NOTIN: "notIn"
LIKE: "like"
OCCURS: "occurs"
BETWEEN: "between"
ON: "on"
BEFORE: "before"
AFTER: "after"
THIS: "this"
LAST: "last"
NEXT: "next"
NOW: "now"
TODAY: "today"
YESTERDAY: "yesterday"
TOMORROW: "tomorrow"
TRUE: "true"
FALSE: "false"

COMP_OP: "<=" | ">=" | "!=" | "=" | "<" | ">"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"
LSQB: "["

NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\]|\\.)*"/s
FLOAT.2: /[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?/ | /[0-9]+[eE][+-]?[0-9]+/
INT: /[0-9]+/

%ignore /\s+/
"""
