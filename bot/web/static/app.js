// The platform's pages: 添加链接 (add a link) and link管理 (manage links).
// No framework and no build step: DOM built with createElement, and everything a user
// stored (titles, notes, summaries, tags) put on screen with textContent, never as HTML.
// Inside Telegram every call carries the Mini App's launch data (Authorization: tma …);
// in a browser the session cookie goes along, and writes carry the CSRF token.

const base = document.querySelector('meta[name="linksnap-base"]').content;
const tg = window.Telegram && window.Telegram.WebApp;
const initData = tg && tg.initData ? tg.initData : "";

let T = {};
let csrf = null;
let undoSeconds = 60;
const state = {
  view: "manage",
  tags: [],
  q: "",
  gone: false,
  page: 0,
  pages: 1,
  total: 0,
  loading: 0, // the listing generation whose page is on its way (0: none)
  generation: 1, // bumped by every new filter or search: older answers are dropped
  selecting: false,
  selected: new Set(),
  detail: null,
};
const root = document.getElementById("app");

// ---- small helpers --------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(template, values) {
  return String(template).replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));
}

function haptic(kind) {
  if (!tg || !tg.HapticFeedback || !tg.isVersionAtLeast || !tg.isVersionAtLeast("6.1")) return;
  if (kind === "select") tg.HapticFeedback.selectionChanged();
  else tg.HapticFeedback.notificationOccurred(kind);
}

class ApiError extends Error {
  constructor(status, data) {
    super((data && data.message) || T.error || "error");
    this.status = status;
    this.data = data || {};
  }
}

function authHeaders(write) {
  const headers = { Accept: "application/json" };
  if (initData) headers.Authorization = "tma " + initData;
  if (write && csrf) headers["X-CSRF-Token"] = csrf;
  return headers;
}

async function api(method, path, body) {
  const write = method !== "GET";
  const headers = authHeaders(write);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(base + "api/" + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

let toastTimer = null;
function toast(message, action) {
  const box = document.getElementById("toast");
  box.replaceChildren(el("span", { text: message }));
  if (action) box.append(el("button", { type: "button", text: action.label, onclick: action.run }));
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), action ? undoSeconds * 1000 : 4000);
}

function fail(error) {
  toast(error instanceof ApiError ? error.message : T.error);
  haptic("error");
}

// ---- theme ----------------------------------------------------------------------

function applyTheme() {
  if (!tg || !initData) return;
  document.documentElement.dataset.scheme = tg.colorScheme === "dark" ? "dark" : "light";
  document.documentElement.dataset.telegram = "";
}

// ---- the frame: title and the two pages' names, on every screen -----------------

function frame(browser) {
  const nav = el(
    "nav",
    { className: "tabs", "aria-label": T.title },
    el("button", { type: "button", id: "nav-add", text: T.nav_add, onclick: () => show("add") }),
    el("button", {
      type: "button",
      id: "nav-manage",
      text: T.nav_manage,
      onclick: () => show("manage"),
    })
  );
  const header = el("header", { className: "top" }, el("h1", { text: T.title }), nav);
  if (browser) {
    header.append(
      el("button", { type: "button", id: "sign-out", className: "quiet", text: T.sign_out, onclick: signOut })
    );
  }
  root.replaceChildren(
    header,
    el("main", { id: "view" }),
    el("section", { id: "detail", className: "detail", hidden: true }),
    el("div", { id: "toast", className: "toast", role: "status", hidden: true })
  );
  document.title = T.title;
  document.documentElement.lang = T.lang;
}

function show(view) {
  state.view = view;
  document.getElementById("nav-add").setAttribute("aria-current", view === "add" ? "page" : "false");
  document.getElementById("nav-manage").setAttribute("aria-current", view === "manage" ? "page" : "false");
  closeDetail();
  if (view === "add") renderAdd();
  else renderManage();
}

// ---- 添加链接: add links -----------------------------------------------------------

const followed = new Map(); // link id -> its result element (kept across views)
let addResults = null;

function renderAdd() {
  const text = el("textarea", {
    id: "add-text",
    rows: 4,
    placeholder: T.add_placeholder,
    "aria-label": T.add_label,
  });
  addResults = addResults || el("ul", { id: "add-results", className: "results" });
  const refused = el("div", { id: "add-refused", className: "refused", hidden: true });
  const submit = el("button", { type: "submit", id: "add-submit", className: "primary", text: T.add_button });
  const form = el(
    "form",
    { className: "add", onsubmit: (e) => addLinks(e, text, submit, refused) },
    el("label", { for: "add-text", text: T.add_label }),
    text,
    submit,
    el("p", { className: "hint", text: T.add_hint })
  );
  document.getElementById("view").replaceChildren(form, refused, addResults);
  text.focus();
}

async function addLinks(event, text, submit, refused) {
  event.preventDefault();
  if (!text.value.trim()) return;
  submit.disabled = true;
  try {
    const result = await api("POST", "links", { text: text.value });
    refused.replaceChildren();
    refused.hidden = !result.refused.length;
    if (result.refused.length) {
      refused.append(el("h3", { text: T.not_added }), ...result.refused.map((line) => el("p", { text: line })));
    }
    for (const link of result.links.slice().reverse()) addResult(link);
    if (result.later) {
      const seconds = Math.max(1, Math.round((Date.parse(result.later) - Date.now()) / 1000));
      toast(fill(T.too_fast, { seconds }));
    }
    if (result.links.length) {
      text.value = "";
      haptic("success");
    }
  } catch (error) {
    fail(error);
  } finally {
    submit.disabled = false;
  }
}

function addResult(link) {
  const old = followed.get(link.id);
  if (old) old.remove();
  const item = el(
    "li",
    { className: "progress", dataset: { id: link.id, stage: link.status } },
    el("a", { className: "title", href: link.url, target: "_blank", rel: "noopener noreferrer", text: link.title }),
    el("p", { className: "domain", text: link.domain }),
    link.created ? null : el("p", { className: "badge", text: T.saved_before }),
    el("p", { className: "stage", text: T["stage_" + link.status] || link.status }),
    el("img", { className: "shot", alt: "", hidden: true }),
    el("p", { className: "failure", hidden: true }),
    el("div", { className: "summary", hidden: true })
  );
  followed.set(link.id, item);
  addResults.prepend(item);
  follow(link.id, item);
}

function showState(item, data) {
  item.dataset.stage = data.status;
  item.querySelector(".stage").textContent = T["stage_" + data.status] || data.status;
  item.querySelector(".title").textContent = data.title;
  const shot = item.querySelector(".shot");
  if (data.shot && shot.getAttribute("src") !== data.shot) {
    shot.src = data.shot;
    shot.hidden = false;
  }
  if (typeof data.summary === "string" && data.summary) {
    const summary = item.querySelector(".summary");
    summary.textContent = data.summary;
    summary.hidden = false;
  }
  const failure = item.querySelector(".failure");
  failure.hidden = !data.failure;
  failure.textContent = data.failure || "";
}

const ENDED = new Set(["done", "failed", "summary_failed"]);

async function follow(id, item) {
  // At least once: a link saved before is shown as it stands (its stage may be done).
  for (let attempt = 0; attempt < 30 && (attempt === 0 || !ENDED.has(item.dataset.stage)); attempt++) {
    try {
      await events(`links/${id}/events`, (event, data) => {
        if (event === "state") showState(item, data);
        if (event === "summary") {
          const summary = item.querySelector(".summary");
          summary.textContent = "all" in data ? data.all : summary.textContent + data.piece;
          summary.hidden = false;
        }
        if (event === "gone") item.dataset.stage = "failed";
      });
    } catch (error) {
      if (error instanceof ApiError) return;
    }
    if (!ENDED.has(item.dataset.stage)) await new Promise((r) => setTimeout(r, 2000));
  }
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
async function events(path, onEvent) {
  const response = await fetch(base + "api/" + path, { headers: authHeaders(false), credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, null);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

// ---- link管理: manage links --------------------------------------------------------

let observer = null;

function renderManage() {
  const search = el("input", {
    type: "search",
    id: "search",
    placeholder: T.search_placeholder,
    "aria-label": T.search_placeholder,
    value: state.q,
  });
  const searchForm = el(
    "form",
    {
      className: "search",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        state.q = search.value.trim();
        state.gone = false;
        reload();
      },
    },
    search,
    el("button", { type: "submit", text: T.search_button })
  );
  const from = el("input", { id: "rename-from", placeholder: T.rename_from, "aria-label": T.rename_from });
  const to = el("input", { id: "rename-to", placeholder: T.rename_to, "aria-label": T.rename_to });
  const rename = el(
    "details",
    { className: "rename" },
    el("summary", { text: T.rename_title }),
    el(
      "form",
      { onsubmit: (e) => renameTag(e, from, to) },
      from,
      el("span", { text: "→" }),
      to,
      el("button", { type: "submit", id: "rename-submit", text: T.rename_button })
    )
  );
  const bulkTag = el("input", { id: "bulk-tag", placeholder: T.tag_placeholder, "aria-label": T.tag_placeholder });
  const bulk = el(
    "div",
    { id: "bulk", className: "bulk", hidden: !state.selecting },
    el("span", { id: "bulk-count", text: fill(T.selected, { count: state.selected.size }) }),
    bulkTag,
    el("button", { type: "button", id: "bulk-add", text: T.bulk_add, onclick: () => bulkRetag("add", bulkTag) }),
    el("button", {
      type: "button",
      id: "bulk-remove",
      text: T.bulk_remove,
      onclick: () => bulkRetag("remove", bulkTag),
    }),
    el("button", { type: "button", id: "bulk-delete", className: "danger", text: T.delete, onclick: bulkDelete })
  );
  const toolbar = el(
    "div",
    { className: "toolbar" },
    el("span", { id: "total" }),
    el("button", {
      type: "button",
      id: "select",
      text: state.selecting ? T.done_selecting : T.select,
      onclick: toggleSelecting,
    })
  );
  const more = el("button", { type: "button", id: "more", className: "quiet", text: T.more, hidden: true, onclick: loadMore });
  document
    .getElementById("view")
    .replaceChildren(
      searchForm,
      el("div", { id: "chips", className: "chips" }),
      rename,
      toolbar,
      bulk,
      el("div", { id: "grid", className: "grid" }),
      el("p", { id: "empty", className: "hint", hidden: true, text: T.empty }),
      more
    );
  if (observer) observer.disconnect();
  observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  });
  observer.observe(more);
  reload();
}

async function reload() {
  state.generation += 1;
  state.page = 0;
  state.pages = 1;
  document.getElementById("grid").replaceChildren();
  await Promise.all([loadTags(), loadPage(0)]);
}

async function loadTags() {
  try {
    const counts = await fetchEarly("tags");
    const chips = counts.map((c) =>
      el("button", {
        type: "button",
        className: "chip",
        dataset: { tag: c.tag },
        "aria-pressed": state.tags.includes(c.tag) ? "true" : "false",
        text: `#${c.tag} ${c.count}`,
        onclick: () => toggleTag(c.tag),
      })
    );
    for (const tag of state.tags) {
      if (!counts.some((c) => c.tag === tag)) {
        chips.unshift(el("button", { type: "button", className: "chip", dataset: { tag }, "aria-pressed": "true", text: `#${tag}`, onclick: () => toggleTag(tag) }));
      }
    }
    const gone = el("button", {
      type: "button",
      className: "chip gone",
      id: "gone-filter",
      "aria-pressed": state.gone ? "true" : "false",
      text: T.filter_gone,
      onclick: toggleGone,
    });
    document.getElementById("chips").replaceChildren(gone, ...(chips.length ? chips : [el("span", { className: "hint", text: T.no_tags })]));
  } catch (error) {
    fail(error);
  }
}

// The offline filter is a view of its own: pages link-rot found gone, whatever their tags.
function toggleGone() {
  state.gone = !state.gone;
  if (state.gone) {
    state.tags = [];
    state.q = "";
    const box = document.getElementById("search");
    if (box) box.value = "";
  }
  haptic("select");
  reload();
}

function toggleTag(tag) {
  state.gone = false;
  state.tags = state.tags.includes(tag) ? state.tags.filter((t) => t !== tag) : [...state.tags, tag];
  haptic("select");
  reload();
}

function listingPath(page) {
  const query = new URLSearchParams({ page: String(page) });
  if (state.gone) query.set("gone", "1");
  if (state.tags.length) query.set("tags", state.tags.join(","));
  if (state.q) query.set("q", state.q);
  return "links?" + query.toString();
}

// The first page and the tags are asked for beside /me at start: one round trip less.
const early = new Map();
function fetchEarly(path) {
  const pending = early.get(path);
  early.delete(path);
  return pending || api("GET", path);
}

async function loadPage(page) {
  // One page at a time per listing; a new filter asks at once, and what the old one
  // asked for is dropped when it comes (answers may come in any order).
  const generation = state.generation;
  if (state.loading === generation) return;
  state.loading = generation;
  try {
    const result = await fetchEarly(listingPath(page));
    if (state.view !== "manage" || generation !== state.generation) return;
    state.page = result.page;
    state.pages = result.pages;
    state.total = result.total;
    const grid = document.getElementById("grid");
    if (page === 0) grid.replaceChildren();
    grid.append(...result.items.map(card));
    document.getElementById("total").textContent = fill(T.total, { total: result.total });
    document.getElementById("empty").hidden = result.total > 0;
    document.getElementById("more").hidden = state.page + 1 >= state.pages;
    grid.dataset.loaded = String(grid.children.length);
    if (page === 0) performance.mark("linksnap:first-page"); // for the bench: interactive
  } catch (error) {
    fail(error);
  } finally {
    if (state.loading === generation) state.loading = 0;
  }
}

function loadMore() {
  if (state.page + 1 < state.pages && !state.loading) loadPage(state.page + 1);
}

function card(item) {
  const picked = state.selected.has(item.id);
  const badges = [];
  if (item.gone) badges.push(el("span", { className: "badge warn", text: T.status_gone }));
  if (item.partial) badges.push(el("span", { className: "badge", text: T.partial }));
  if (item.status !== "done") badges.push(el("span", { className: "badge", text: T["stage_" + item.status] || item.status }));
  return el(
    "article",
    {
      className: "card",
      dataset: { id: item.id, selected: picked ? "true" : "false" },
      tabindex: 0,
      onclick: () => (state.selecting ? toggleSelected(item.id) : openDetail(item.id)),
      onkeydown: (e) => {
        if (e.key === "Enter") state.selecting ? toggleSelected(item.id) : openDetail(item.id);
      },
    },
    item.thumb
      ? el("img", { className: "thumb", src: item.thumb, alt: "", loading: "lazy", width: 400, height: 250 })
      : el("div", { className: "thumb none" }),
    el("input", { type: "checkbox", className: "pick", checked: picked, tabindex: -1, "aria-label": item.title }),
    el(
      "div",
      { className: "meta" },
      el("h3", { className: "title", text: item.title }),
      el("p", { className: "domain", text: `${item.domain} · ${item.date}` }),
      item.tags.length ? el("p", { className: "tags", text: item.tags.map((t) => "#" + t).join(" ") }) : null,
      badges.length ? el("p", { className: "badges" }, badges) : null
    )
  );
}

function toggleSelecting() {
  state.selecting = !state.selecting;
  state.selected.clear();
  document.getElementById("view").classList.toggle("selecting", state.selecting);
  document.getElementById("select").textContent = state.selecting ? T.done_selecting : T.select;
  document.getElementById("bulk").hidden = !state.selecting;
  for (const node of document.querySelectorAll(".card")) {
    node.dataset.selected = "false";
    node.querySelector(".pick").checked = false;
  }
  updateBulkCount();
}

function toggleSelected(id) {
  if (state.selected.has(id)) state.selected.delete(id);
  else state.selected.add(id);
  const node = document.querySelector(`.card[data-id="${CSS.escape(id)}"]`);
  if (node) {
    node.dataset.selected = String(state.selected.has(id));
    node.querySelector(".pick").checked = state.selected.has(id);
  }
  haptic("select");
  updateBulkCount();
}

function updateBulkCount() {
  document.getElementById("bulk-count").textContent = fill(T.selected, { count: state.selected.size });
}

async function bulkRetag(how, input) {
  const tag = input.value.trim();
  if (!tag || !state.selected.size) return;
  try {
    const result = await api("POST", "bulk", { ids: [...state.selected], [how]: [tag] });
    input.value = "";
    toast(fill(T.retagged_many, { count: result.changed.length }));
    haptic("success");
    toggleSelecting();
    reload();
  } catch (error) {
    fail(error);
  }
}

async function bulkDelete() {
  if (!state.selected.size) return;
  try {
    const result = await api("POST", "bulk", { ids: [...state.selected], delete: true });
    haptic("success");
    toggleSelecting();
    reload();
    toast(fill(T.deleted_many, { count: result.deleted.length }), {
      label: T.undo,
      run: () => undoMany(result.deleted),
    });
  } catch (error) {
    fail(error);
  }
}

async function undoMany(ids) {
  try {
    await api("POST", "bulk/undo", { ids });
    toast(T.restored);
    if (state.view === "manage") reload();
  } catch (error) {
    fail(error);
  }
}

async function renameTag(event, from, to) {
  event.preventDefault();
  if (!from.value.trim() || !to.value.trim()) return;
  try {
    const result = await api("POST", "tags/rename", { from: from.value, to: to.value });
    toast(fill(T.renamed, { old: result.from, new: result.to, count: result.changed }));
    from.value = to.value = "";
    state.tags = state.tags.map((t) => (t === result.from ? result.to : t));
    haptic("success");
    reload();
  } catch (error) {
    fail(error);
  }
}

// ---- one link --------------------------------------------------------------------

function backButton(visible) {
  if (!tg || !initData || !tg.BackButton) return;
  if (visible) tg.BackButton.show();
  else tg.BackButton.hide();
}

async function openDetail(id) {
  let link;
  try {
    link = await api("GET", "links/" + encodeURIComponent(id));
  } catch (error) {
    fail(error);
    return;
  }
  state.detail = link;
  renderDetail(link);
}

function renderDetail(link) {
  const pane = document.getElementById("detail");
  const tagsInput = el("input", {
    id: "detail-tags",
    value: link.tags.map((t) => "#" + t).join(" "),
    placeholder: T.tags_placeholder,
    "aria-label": T.edit_tags,
  });
  const files = el("div", { id: "detail-files", className: "files" });
  const badges = [];
  if (link.gone) badges.push(el("p", { className: "badge warn", text: T.status_gone }));
  if (link.partial) badges.push(el("p", { className: "badge", text: T.partial }));
  if (link.failure) badges.push(el("p", { className: "badge warn", text: fill(T.status_failed, { reason: link.failure }) }));
  if (!ENDED.has(link.status)) badges.push(el("p", { className: "badge", text: T["stage_" + link.status] || link.status }));
  // Absent parts left out: replaceChildren would show a null as the text "null".
  const parts = [
    el("button", { type: "button", id: "detail-back", className: "quiet back", text: "← " + T.back, onclick: closeDetail }),
    link.shot
      ? el(
          "a",
          { href: link.shot, target: "_blank", rel: "noopener noreferrer", id: "detail-shot-link", title: T.full_screenshot },
          el("img", { id: "detail-shot", className: "full", src: link.shot, alt: T.full_screenshot })
        )
      : null,
    el("h2", { id: "detail-title", text: link.title }),
    el("a", { id: "detail-url", className: "url", href: link.url, target: "_blank", rel: "noopener noreferrer", text: link.url }),
    el("p", { className: "domain", text: `${link.domain} · ${fill(T.saved_on, { date: link.date })}` }),
    ...badges,
    link.note ? el("p", { id: "detail-note", className: "note", text: link.note }) : null,
    link.summary ? el("h3", { text: T.summary }) : null,
    link.summary ? el("p", { id: "detail-summary", className: "summary", text: link.summary }) : null,
    el("h3", { text: T.tags }),
    el(
      "form",
      { className: "edit-tags", onsubmit: (e) => saveTags(e, link, tagsInput) },
      tagsInput,
      el("button", { type: "submit", id: "detail-save-tags", text: T.save })
    ),
    el(
      "div",
      { className: "actions" },
      el("button", { type: "button", id: "detail-recapture", text: T.capture_again, onclick: () => recapture(link) }),
      el("button", { type: "button", id: "detail-delete", className: "danger", text: "🗑 " + T.delete, onclick: () => deleteLink(link) })
    ),
    link.files.length
      ? el(
          "div",
          { className: "actions" },
          link.files.map((kind) =>
            el("button", {
              type: "button",
              id: "detail-file-" + kind,
              text: T["file_" + kind],
              onclick: (e) => makeFile(link, kind, e.currentTarget, files),
            })
          )
        )
      : null,
    files,
  ];
  pane.replaceChildren(...parts.filter((part) => part !== null));
  pane.hidden = false;
  document.getElementById("view").hidden = true;
  backButton(true);
  window.scrollTo(0, 0);
}

function closeDetail() {
  const pane = document.getElementById("detail");
  if (!pane || pane.hidden) return;
  pane.hidden = true;
  pane.replaceChildren();
  document.getElementById("view").hidden = false;
  state.detail = null;
  backButton(false);
}

function words(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

async function saveTags(event, link, input) {
  event.preventDefault();
  try {
    const updated = await api("POST", `links/${link.id}/tags`, { tags: words(input.value) });
    haptic("success");
    renderDetail(updated);
    refreshCard(updated);
  } catch (error) {
    fail(error);
  }
}

function refreshCard(item) {
  const node = document.querySelector(`.card[data-id="${CSS.escape(item.id)}"]`);
  if (node) node.replaceWith(card(item));
  if (state.view === "manage") loadTags();
}

async function deleteLink(link) {
  try {
    await api("DELETE", "links/" + link.id);
    haptic("success");
    closeDetail();
    const node = document.querySelector(`.card[data-id="${CSS.escape(link.id)}"]`);
    if (node) node.remove();
    if (state.view === "manage") loadTags();
    toast(T.deleted, { label: T.undo, run: () => undo(link.id) });
  } catch (error) {
    fail(error);
  }
}

async function undo(id) {
  try {
    await api("POST", `links/${id}/undo`);
    toast(T.restored);
    haptic("success");
    if (state.view === "manage") reload();
  } catch (error) {
    fail(error);
  }
}

async function recapture(link) {
  try {
    const item = await api("POST", `links/${link.id}/recapture`);
    toast(T.capture_queued);
    haptic("success");
    show("add");
    addResult({ ...item, created: true });
  } catch (error) {
    fail(error);
  }
}

async function makeFile(link, kind, button, files) {
  button.disabled = true;
  const name = T["kind_" + kind] || kind;
  const making = el("p", { className: "hint", text: fill(T.file_making, { what: name }) });
  files.append(making);
  try {
    const made = await api("POST", `links/${link.id}/files/${kind}`);
    making.replaceWith(
      el(
        "p",
        { className: "file" },
        el("a", { href: made.url, download: made.name, className: "download", dataset: { kind }, text: fill(T.download, { name: made.name }) }),
        ` (${made.size})`
      )
    );
  } catch (error) {
    making.remove();
    fail(error);
  } finally {
    button.disabled = false;
  }
}

// ---- signing out, and what is shown when the page may show nothing ----------------

async function signOut() {
  try {
    await api("POST", "signout");
  } catch (error) {
    /* signed out either way */
  }
  refused(T.signed_out);
}

function refused(message) {
  root.replaceChildren(
    el("main", { className: "refused-page" }, el("h1", { text: T.title || "linksnap" }), el("p", { id: "refusal", text: message }))
  );
}

async function start() {
  if (tg) {
    tg.ready();
    if (initData) tg.expand();
    applyTheme();
    tg.onEvent("themeChanged", applyTheme);
    if (tg.BackButton) tg.BackButton.onClick(closeDetail);
  }
  const params = new URLSearchParams(location.search);
  state.view = params.get("view") === "add" ? "add" : "manage";
  state.tags = (params.get("tags") || "").split(",").filter(Boolean);
  state.q = params.get("q") || "";
  state.gone = params.get("gone") === "1";
  if (state.view === "manage") {
    for (const path of [listingPath(0), "tags"]) {
      const pending = api("GET", path);
      pending.catch(() => {}); // a refusal is told by /me below
      early.set(path, pending);
    }
  }
  let me;
  try {
    me = await api("GET", "me");
  } catch (error) {
    const hint = tg && tg.initDataUnsafe && tg.initDataUnsafe.user ? tg.initDataUnsafe.user.language_code : navigator.language;
    try {
      T = await (await fetch(base + "api/texts?lang=" + encodeURIComponent(hint || "en"))).json();
    } catch (e) {
      T = {};
    }
    refused(error instanceof ApiError && error.data.message ? error.data.message : T.error || "Error");
    return;
  }
  T = me.texts;
  csrf = me.csrf;
  undoSeconds = me.undo_seconds;
  frame(me.browser);
  show(state.view);
  document.body.dataset.ready = "true";
}

start();
