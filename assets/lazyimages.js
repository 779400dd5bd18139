// Pictures that need the admin key (event snapshots): an <img> cannot send the
// Authorization header, so each is fetched as a Blob once it scrolls near the screen and
// shown through a blob: URL. A few at a time, so a long timeline does not fire a hundred
// requests at once; the URLs are revoked when the picture goes away.

const CONCURRENCY = 4;

export class LazyImages {
  constructor({ rootMargin = '300px' } = {}) {
    this.items = new Map(); // img → {load, url, visible, wanted, loading}
    this.queue = [];
    this.running = 0;
    this.destroyed = false;
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          const item = this.items.get(entry.target);
          if (!item) continue;
          item.visible = entry.isIntersecting;
          if (item.visible && !item.url && !item.loading) this.#enqueue(entry.target);
        }
      },
      { rootMargin },
    );
  }

  /** Shows `load()` (→ Promise<Blob>) in `img` once it is near the viewport. */
  observe(img, load) {
    this.items.set(img, { load, url: null, visible: false, loading: false, stale: false });
    img.dataset.state = 'waiting';
    this.observer.observe(img);
  }

  /** The picture changed on the server: fetch it again (now if shown, else when shown). */
  refresh(img, load) {
    const item = this.items.get(img);
    if (!item) return;
    if (load) item.load = load;
    if (item.loading) item.stale = true;
    else if (item.url || item.visible) this.#enqueue(img);
  }

  forget(img) {
    const item = this.items.get(img);
    if (!item) return;
    this.observer.unobserve(img);
    if (item.url) URL.revokeObjectURL(item.url);
    this.items.delete(img);
  }

  destroy() {
    this.destroyed = true;
    this.observer.disconnect();
    for (const item of this.items.values()) if (item.url) URL.revokeObjectURL(item.url);
    this.items.clear();
    this.queue = [];
  }

  #enqueue(img) {
    if (!this.queue.includes(img)) this.queue.push(img);
    this.#pump();
  }

  #pump() {
    while (this.running < CONCURRENCY && this.queue.length) {
      const img = this.queue.shift();
      const item = this.items.get(img);
      if (item) this.#load(img, item);
    }
  }

  async #load(img, item) {
    this.running += 1;
    item.loading = true;
    item.stale = false;
    if (!item.url) img.dataset.state = 'loading';
    try {
      const blob = await item.load();
      if (this.destroyed || this.items.get(img) !== item) return;
      const url = URL.createObjectURL(blob);
      if (item.url) URL.revokeObjectURL(item.url);
      item.url = url;
      img.src = url;
      img.dataset.state = 'loaded';
    } catch (err) {
      if (this.destroyed || this.items.get(img) !== item) return;
      if (!item.url) img.dataset.state = err && err.status === 404 ? 'missing' : 'error';
    } finally {
      item.loading = false;
      this.running -= 1;
      if (!this.destroyed) {
        if (item.stale && this.items.get(img) === item) this.#enqueue(img);
        this.#pump();
      }
    }
  }
}
