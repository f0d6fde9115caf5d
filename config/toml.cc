/* TOML reader: parses with toml++ and turns the tree into a neutral document (doc.h): each
 * section and key with its line, keys in toml++'s order (by name). The only C++ in srv; every
 * exception stops here, because an exception unwinding through C frames is undefined behaviour. */
#include "config/toml.h"

#include <cerrno>
#include <new>
#include <string>
#include <toml++/toml.h>
#include <vector>

namespace
{

int line_of(const toml::source_region &src)
{
    return src.begin.line > 0 ? static_cast<int>(src.begin.line) : 0;
}

/* node as a document value; its strings stay toml++'s (srv__doc_add_key copies them), list items
 * go to items. */
srv__val_t value_of(const toml::node &node, std::vector<srv__doc_str_t> &items)
{
    srv__val_t v{};
    switch (node.type()) {
    case toml::node_type::string: {
        const std::string &s = node.as_string()->get();
        v.kind = SRV__VAL_STRING;
        v.s = s.data();
        v.len = s.size();
        break;
    }
    case toml::node_type::integer:
        v.kind = SRV__VAL_INT;
        v.i = node.as_integer()->get();
        break;
    case toml::node_type::floating_point:
        v.kind = SRV__VAL_FLOAT;
        v.f = node.as_floating_point()->get();
        break;
    case toml::node_type::boolean:
        v.kind = SRV__VAL_BOOL;
        v.b = node.as_boolean()->get();
        break;
    case toml::node_type::array:
        v.kind = SRV__VAL_LIST;
        items.clear();
        for (const toml::node &elem : *node.as_array()) {
            if (!elem.is_string()) {
                items.clear();
                break;
            }
            const std::string &s = elem.as_string()->get();
            items.push_back(srv__doc_str_t{s.data(), s.size()});
        }
        v.items = items.data();
        v.nitems = items.size();
        break;
    case toml::node_type::table:
        v.kind = SRV__VAL_TABLE;
        break;
    default:
        v.kind = SRV__VAL_DATETIME;
        break;
    }
    return v;
}

/* Line of a key, falling back to its value's when toml++ has none (implicit tables). */
int key_line(const toml::key &k, const toml::node &v)
{
    int line = line_of(k.source());
    return line > 0 ? line : line_of(v.source());
}

void add_keys(srv__doc_t *doc, int sect, const toml::table &tbl);

/* A table's `columns = [{name = ..., type = ..., size = ...}, ...]`: a column section each. */
void add_columns(srv__doc_t *doc, int table, const toml::node &node, int line)
{
    const toml::array *cols = node.as_array();
    if (cols == nullptr) {
        srv__doc_error(doc, line, "columns",
                       "must be an array of tables like {name = \"x\", "
                       "type = \"int\"}");
        return;
    }
    for (const toml::node &elem : *cols) {
        const toml::table *col = elem.as_table();
        int col_line = line_of(elem.source());
        if (col == nullptr) {
            srv__doc_error(doc, col_line ? col_line : line, "columns",
                           "each column must be a table like {name = \"x\", type = \"int\"}");
            continue;
        }
        int c = srv__doc_add_sect(doc, SRV__SECT_COLUMN, table, col_line ? col_line : line);
        if (c >= 0)
            add_keys(doc, c, *col);
    }
}

/* A listener's `[[listen.sni]]` tables: an SNI section each, under the listener. */
void add_sni(srv__doc_t *doc, int listen, const toml::node &node, int line)
{
    if (!node.is_array_of_tables()) {
        srv__doc_error(doc, line, "sni", "must be an array of tables ([[listen.sni]])");
        return;
    }
    for (const toml::node &elem : *node.as_array()) {
        int eline = line_of(elem.source());
        int s = srv__doc_add_sect(doc, SRV__SECT_SNI, listen, eline ? eline : line);
        if (s >= 0)
            add_keys(doc, s, *elem.as_table());
    }
}

void add_keys(srv__doc_t *doc, int sect, const toml::table &tbl)
{
    std::vector<srv__doc_str_t> items;
    for (auto &&[k, v] : tbl) {
        std::string key(k.str());
        int kline = key_line(k, v);
        if (doc->sects[sect].kind == SRV__SECT_TABLE && key == "columns") {
            add_columns(doc, sect, v, kline);
            continue;
        }
        if (doc->sects[sect].kind == SRV__SECT_LISTEN && key == "sni") {
            add_sni(doc, sect, v, kline);
            continue;
        }
        srv__val_t val = value_of(v, items);
        srv__doc_add_key(doc, sect, key.c_str(), nullptr, &val, kline);
    }
}

void add_section(srv__doc_t *doc, srv__sect_t kind, const toml::table &tbl, int line)
{
    int sect = srv__doc_add_sect(doc, kind, -1, line);
    if (sect >= 0)
        add_keys(doc, sect, tbl);
}

void walk(srv__doc_t *doc, const toml::table &root)
{
    for (auto &&[k, v] : root) {
        std::string name(k.str());
        int line = key_line(k, v);
        int kind = srv__doc_sect_lookup(name.c_str());
        if (kind < 0) {
            if (v.is_table() || v.is_array_of_tables())
                srv__doc_error(doc, line, name.c_str(), "unknown section");
            else
                srv__doc_error(doc, line, name.c_str(),
                               "unknown section (server keys go under [server])");
            continue;
        }
        if (kind == SRV__SECT_SERVER) {
            if (!v.is_table()) {
                srv__doc_error(doc, line, name.c_str(), "must be a table ([server])");
                continue;
            }
            int sline = line_of(v.source());
            add_section(doc, SRV__SECT_SERVER, *v.as_table(), sline ? sline : line);
            continue;
        }
        if (!v.is_array_of_tables()) {
            srv__doc_error(doc, line, name.c_str(), "must be an array of tables ([[%s]])",
                           name.c_str());
            continue;
        }
        for (const toml::node &elem : *v.as_array()) {
            int eline = line_of(elem.source());
            add_section(doc, static_cast<srv__sect_t>(kind), *elem.as_table(),
                        eline ? eline : line);
        }
    }
}

} // namespace

extern "C" int srv__toml_read(srv__doc_t *doc, const char *text, size_t len, const char *path)
{
    try {
        toml::table root = toml::parse(std::string_view(text, len), std::string_view(path));
        walk(doc, root);
    } catch (const toml::parse_error &e) {
        std::string desc(e.description());
        srv__doc_error(doc, line_of(e.source()), "", "%s", desc.c_str());
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (const std::exception &e) {
        srv__doc_error(doc, 0, "", "TOML reader failed: %s", e.what());
    } catch (...) {
        srv__doc_error(doc, 0, "", "TOML reader failed");
    }
    return doc->nomem ? -ENOMEM : doc->diag.set ? -EINVAL : 0;
}
