// Small screens: every list table can be read as cards (each cell labelled with its column's name, shown by
// the stylesheet below 640 px), and the menu's current item is scrolled into view in the one-row header.
(function () {
  'use strict';
  var tables = document.querySelectorAll('table.list:not(.keep-table)');
  Array.prototype.forEach.call(tables, function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll('thead th'), function (th) {
      return th.textContent.trim();
    });
    if (!heads.length) { return; }
    table.classList.add('cards-on-phone');
    Array.prototype.forEach.call(table.querySelectorAll('tbody tr, tfoot tr'), function (row) {
      var column = 0;
      Array.prototype.forEach.call(row.children, function (cell) {
        var span = parseInt(cell.getAttribute('colspan') || '1', 10);
        if (span === 1 && heads[column] && !cell.hasAttribute('data-label')) {
          cell.setAttribute('data-label', heads[column]);
        }
        column += span;
      });
    });
  });
  var on = document.querySelector('header.top .nav a.on, header.top .who a.on');
  if (on && window.matchMedia('(max-width: 640px)').matches) {
    var header = on.closest('header');
    header.scrollLeft = on.offsetLeft - (header.clientWidth - on.offsetWidth) / 2;
  }
})();
